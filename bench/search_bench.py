"""Gallery search latency and memory (10^4, 10^5, 10^6 features) and ONNX vs PyTorch extraction.

Search: random L2-normalised 2048-d features written with ``save_features`` (the file of
``msareid extract``), searched with the chunked exact top-k over the memory-mapped file, each size
in a fresh process so its peak memory is its own. Extraction: ResNet-50 (last stride 1) at 288x144
with random weights, PyTorch eager vs onnxruntime, batch 16, on this CPU.
Usage: python bench/search_bench.py [--out bench/out] [--sizes 10000 100000 1000000] [--dim 2048]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _status() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmHWM", "RssAnon", "RssFile"):
            out[key] = int(line.split()[1]) / 1024
    return out


def search_child(path: str, queries: int) -> dict:
    from msareid.eval.gallery import FeatureFile, top_k

    ff = FeatureFile(path)
    q = np.asarray(ff.feat[:queries]).copy()
    top_k(q[:1], ff.feat, 10)  # the first pass reads the file into the page cache
    start = time.perf_counter()
    top_k(q[:1], ff.feat, 10)
    one = time.perf_counter() - start
    start = time.perf_counter()
    ids, _ = top_k(q, ff.feat, 10)
    many = time.perf_counter() - start
    assert (ids[:, 0] == np.arange(queries)).all()  # each query finds itself first
    return {"one_query_s": one, "batch_s": many, **_status()}


def write_gallery(path: Path, n: int, dim: int) -> None:
    from msareid.eval.gallery import save_features

    if path.exists():
        return
    rng = np.random.default_rng(0)
    feat = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), mode="w+", dtype=np.float32, shape=(n, dim))
    for start in range(0, n, 100_000):
        block = rng.normal(size=(min(100_000, n - start), dim)).astype(np.float32)
        feat[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    save_features(path, feat, [f"{i}.jpg" for i in range(n)], np.zeros(n), np.zeros(n), ["rgb"] * n)
    del feat
    path.with_suffix(".tmp.npy").unlink()


def extraction(out: Path) -> None:
    import onnxruntime
    import torch

    from msareid.config import config_to_dict
    from msareid.export import export_onnx
    from msareid.recipes import load_config
    from msareid.systems.network import build_model
    from msareid.training.checkpoint import save_atomic

    cfg = load_config("configs/sysu.toml", ["model.pretrained=none"])
    model = build_model(cfg, 395).eval()
    ckpt = out / "resnet50_random.pt"
    save_atomic({"model": model.state_dict(), "config": config_to_dict(cfg), "num_classes": 395}, ckpt)
    onnx_path = export_onnx(ckpt, out / "resnet50_random.onnx")
    x = torch.randn(16, 3, 288, 144)
    with torch.no_grad():
        model(x[:2])
        start = time.perf_counter()
        for _ in range(3):
            ref = model(x).bnneck
        t_torch = (time.perf_counter() - start) / 3
    session = onnxruntime.InferenceSession(str(onnx_path))
    session.run(["bnneck"], {"images": x[:2].numpy()})
    start = time.perf_counter()
    for _ in range(3):
        got = session.run(["bnneck"], {"images": x.numpy()})[0]
    t_onnx = (time.perf_counter() - start) / 3
    diff = float(np.abs(got - ref.numpy()).max())
    print(f"extraction, ResNet-50 288x144, batch 16: PyTorch {16 / t_torch:.1f} images/s, onnxruntime "
          f"{16 / t_onnx:.1f} images/s ({t_torch / t_onnx:.2f}x); max |difference| {diff:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench/out")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--skip-extraction", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(search_child(args.child[0], int(args.child[1]))))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for n in args.sizes:
        path = out / f"gallery_{n}x{args.dim}.npz"
        start = time.perf_counter()
        write_gallery(path, n, args.dim)
        made = time.perf_counter() - start
        done = subprocess.run([sys.executable, __file__, "--child", str(path), str(args.queries)],
                              capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        size_gb = path.stat().st_size / 2**30
        print(f"gallery {n:>9,} x {args.dim} ({size_gb:.2f} GiB file, written in {made:.0f}s): 1 query "
              f"{1000 * r['one_query_s']:.0f} ms, {args.queries} queries {1000 * r['batch_s']:.0f} ms; "
              f"peak RSS {r['VmHWM']:.0f} MB (private {r['RssAnon']:.0f} MB, file-backed {r['RssFile']:.0f} MB)")
    if not args.skip_extraction:
        extraction(out)


if __name__ == "__main__":
    main()
