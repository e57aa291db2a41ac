"""Training and feature-extraction throughput, and the peak memory of a training run.

Runs ``msareid train`` for a few steps on the SYSU-sized synthetic set of ``data_bench.py``
(395 training ids, ~22k RGB + ~12k IR images, memory-mapped cache at 288x144), for the baseline and
for MSA, each in a fresh process whose peak RSS is read from the kernel; then times feature
extraction with the trained network. Images/s are measured from the second step on (the first
allocates and warms up), from the timestamps of ``metrics.jsonl``. ``--workers 0,1,2`` repeats
the runs with that many data-loader workers; ``--no-reuse-memory`` trains with
``train.reuse_memory = false``. Usage:
    python bench/train_bench.py [--backbone resnet50] [--steps 3] [--workers 0] [--out bench/out]
(run bench/data_bench.py first: it writes the dataset and its cache).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch


def _train(out: Path, name: str, backbone: str, steps: int, msa: bool, height: int, width: int, workers: int = 0,
           reuse: bool = True) -> dict:
    run = out / "train_runs" / f"{backbone}_{name}_{height}x{width}_w{workers}"
    if run.exists():
        import shutil

        shutil.rmtree(run)
    sets = {"data.root": str(out / "sysu_sized"), "data.cache_dir": str(out / "cache"), "data.num_workers": workers,
            "train.reuse_memory": reuse,
            "data.height": height, "data.width": width, "model.backbone": backbone, "model.pretrained": "none",
            "model.r2i": msa, "model.i2r": msa, "train.epochs": 1, "train.max_steps_per_epoch": steps,
            "train.log_every": 1}
    cmd = [sys.executable, "-c", _CHILD, str(run)]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={str(v).lower() if isinstance(v, bool) else v}"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    peak_kb = int(done.stdout.strip().splitlines()[-1])
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    times = [r["time"] for r in records if r["event"] == "step"]  # one a step (log_every = 1)
    per_step = 48  # 6 ids x (4 RGB + 4 IR)
    rate = per_step * (len(times) - 1) / (times[-1] - times[0])  # from the end of step 1 to the last
    return {"run": run, "images_per_s": rate, "peak_rss_mb": peak_kb / 1024}


_CHILD = """
import sys
from msareid.cli import main
code = main(["train", "--out", sys.argv[1], "--no-progress", *sys.argv[2:]])
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(line.split()[1])
sys.exit(code)
"""


def _extract(run: Path, images: int, reuse: bool) -> float:
    from msareid.allocator import reuse_freed_memory
    from msareid.data.cache import ImageCache
    from msareid.inference import extract, load_trained

    if reuse:
        reuse_freed_memory()  # as msareid extract / evaluate do
    model, config, _ = load_trained(run / "last.pt")
    caches = sorted((run.parents[1] / "cache").glob(f"*x{config.data.height}x{config.data.width}.npy"))
    cache = ImageCache(caches[0])
    subset = [cache[i] for i in range(min(images, len(cache)))]
    extract(model, subset[:8], config.data.height, config.data.width, batch_size=8)  # warm-up
    start = time.perf_counter()
    extract(model, subset, config.data.height, config.data.width, batch_size=32)
    return len(subset) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench/out")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--width", type=int, default=144)
    parser.add_argument("--extract-images", type=int, default=128)
    parser.add_argument("--workers", default="0", help="data-loader workers, e.g. 0,1,2 (one pair of runs each)")
    parser.add_argument("--no-reuse-memory", action="store_true", help="train.reuse_memory = false")
    args = parser.parse_args()
    if args.steps < 2:
        raise SystemExit("--steps must be 2 or more: the first step is warm-up")
    out = Path(args.out)
    if not (out / "sysu_sized").is_dir():
        raise SystemExit("run bench/data_bench.py first (it writes the SYSU-sized synthetic set)")
    print(f"{args.backbone} at {args.height}x{args.width}, {torch.get_num_threads()} CPU threads, "
          f"6 ids x (4 RGB + 4 IR) a step, {args.steps} steps (rates from step 2 on), freed memory "
          f"{'returned to the system' if args.no_reuse_memory else 'kept'}")
    for workers in (int(w) for w in args.workers.split(",")):
        rates = {}
        for name, msa in (("baseline", False), ("msa", True)):
            r = _train(out, name, args.backbone, args.steps, msa, args.height, args.width, workers,
                       not args.no_reuse_memory)
            rates[name] = r["images_per_s"]
            print(f"train {name:<8} ({workers} workers): {r['images_per_s']:6.2f} RGB+IR images/s; peak RSS of the "
                  f"training process {r['peak_rss_mb']:.0f} MB (dataset cache on disk: memory-mapped)")
        print(f"  step time MSA / baseline: {rates['baseline'] / rates['msa']:.2f}")
    rate = _extract(r["run"], args.extract_images, not args.no_reuse_memory)
    print(f"feature extraction: {rate:.1f} images/s (batch 32, no flip)")


if __name__ == "__main__":
    main()
