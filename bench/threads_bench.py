"""Two trainings side by side: torch threads chosen per process vs every process taking every core.

Runs ``msareid train`` (configs/tiny.toml, 64 x 32) for a fixed number of steps: one process alone,
then two at once with ``train.threads`` = all cores each (oversubscribed, as two processes with
torch's defaults), then two at once with cores / 2 each (what ``msareid ablate --jobs 2`` sets).
Prints the images/s of each process. Usage: python bench/threads_bench.py [--steps 60]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _launch(root: Path, out: Path, threads: int, steps: int) -> subprocess.Popen:
    sets = [f"data.root={root}", f"data.cache_dir={root.parent / 'cache'}", "train.epochs=1",
            f"train.max_steps_per_epoch={steps}", f"train.threads={threads}", "train.log_every=1000"]
    cmd = [sys.executable, "-m", "msareid", "train", "--config", str(REPO / "configs" / "tiny.toml"), "--out",
           str(out), "--no-progress"]
    for s in sets:
        cmd += ["--set", s]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": str(threads)})


def _rate(out: Path) -> float:
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [x for x in lines if x["event"] == "step"][-1]["images_per_s"]


def _case(root: Path, tmp: Path, name: str, threads: list[int], steps: int) -> list[float]:
    outs = [tmp / f"{name}_{i}" for i in range(len(threads))]
    t0 = time.perf_counter()
    procs = [_launch(root, o, t, steps) for o, t in zip(outs, threads)]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(err)
    rates = [_rate(o) for o in outs]
    print(f"{name:<42} threads {threads}: images/s {', '.join(f'{r:.0f}' for r in rates)} "
          f"(sum {sum(rates):.0f}; {time.perf_counter() - t0:.0f} s wall)", flush=True)
    return rates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=60)
    args = p.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from msareid.data.synthetic import SysuSpec, write_sysu
    from msareid.threads import available_cores

    cores = available_cores()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        root = write_sysu(tmp / "data", SysuSpec(ids=60, rgb_images=4, ir_images=6))
        _case(root, tmp, "warm-up (decodes the cache)", [cores], 2)
        print(f"{cores} cores; configs/tiny.toml (MSA, 64 x 32), {args.steps} steps a process")
        _case(root, tmp, "one process, all cores", [cores], args.steps)
        _case(root, tmp, "two processes, all cores each (oversubscribed)", [cores, cores], args.steps)
        _case(root, tmp, "two processes, cores / 2 each", [max(1, cores // 2)] * 2, args.steps)


if __name__ == "__main__":
    main()
