"""Data-layer benchmark on a SYSU-sized synthetic set (395 training ids, ~22k RGB + ~12k IR).

Prints: synthesis time, cache build time, loader throughput (images/s, training transforms
included) for 0, 1 and 2 workers, and the memory of a training loader reading through the
memory-mapped cache. Usage: python bench/data_bench.py [--out bench/out] [--batches 100]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from msareid.data.cache import ImageCache
from msareid.data.synthetic import SysuSpec, write_sysu
from msareid.data.sysu import SysuMM01


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return -1


def loader_run(root: str, cache_dir: str, workers: int, batches: int) -> dict:
    """Iterate ``batches`` training batches of the real training pipeline (``engine.build_train_data``
    with the paper's settings); images/s and memory of this process and its workers."""
    from msareid.engine import build_train_data
    from msareid.recipes import load_config
    from msareid.training.distributed import DistEnv

    config = load_config("configs/sysu.toml", [f"data.root={root}", f"data.cache_dir={cache_dir}",
                                               f"data.num_workers={workers}"])
    it = iter(build_train_data(config, DistEnv(), progress=False).loader)
    next(it)  # worker start-up is not throughput
    start, images = time.perf_counter(), 0
    for _ in range(batches):
        x_rgb, x_ir, _, _ = next(it)
        images += x_rgb.shape[0] + x_ir.shape[0]
    seconds = time.perf_counter() - start
    return {
        "workers": workers, "images_per_s": images / seconds,
        "images_per_s_per_worker": images / seconds / max(1, workers),
        "main_peak_rss_mb": _status_kb("VmHWM") / 1024,
        "main_rss_anon_mb": _status_kb("RssAnon") / 1024, "main_rss_file_mb": _status_kb("RssFile") / 1024,
        "workers_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 if workers else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench/out")
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--child", nargs=2, metavar=("WORKERS", "BATCHES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = Path(args.out)
    root, cache = out / "sysu_sized", out / "cache"
    if args.child:
        print(json.dumps(loader_run(str(root), str(cache), int(args.child[0]), int(args.child[1]))))
        return
    if not root.exists():
        t = time.perf_counter()
        write_sysu(root, SysuSpec(ids=491, rgb_images=23, ir_images=20, frame_height=288), workers=2)
        print(f"synthesis: {time.perf_counter() - t:.1f}s")
    rgb, ir = SysuMM01(root).train()
    print(f"training set: {len({r.pid for r in rgb})} ids, {len(rgb)} RGB, {len(ir)} IR images")
    for name, records in (("rgb", rgb), ("ir", ir)):
        t = time.perf_counter()
        c = ImageCache.build([r.path for r in records], 288, 144, cache, threads=2)
        print(f"cache build {name}: {time.perf_counter() - t:.1f}s, {c.path.stat().st_size / 2**30:.2f} GiB")
    for workers in (0, 1, 2):  # a fresh process each, so peak memory is the loader's own
        done = subprocess.run([sys.executable, __file__, "--out", str(out), "--child", str(workers),
                               str(args.batches)], capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"loader workers={workers}: {r['images_per_s']:.0f} images/s "
              f"({r['images_per_s_per_worker']:.0f}/worker); main peak RSS {r['main_peak_rss_mb']:.0f} MB "
              f"(anon {r['main_rss_anon_mb']:.0f} MB, file-backed {r['main_rss_file_mb']:.0f} MB), "
              f"worker peak RSS {r['workers_peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
