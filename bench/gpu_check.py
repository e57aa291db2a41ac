"""The GPU check: what only a CUDA device can tell, in one run of a few minutes.

1. the CUDA-marked tests (AMP, channels-last, NCCL under torchrun on one rank, checkpoints moving
   between GPU and CPU);
2. training throughput of the baseline and MSA (ResNet-50 at 288 x 144 by default) on a synthetic
   set in the SYSU-MM01 layout, with mixed precision on and off: input images/s (RGB + IR) and
   peak GPU memory, timed over ``--steps`` steps after warm-up steps, through the training loop
   that ``msareid train`` runs (loader, objective, optimiser, GradScaler, finiteness check);
3. feature-extraction throughput;
4. one ``msareid evaluate --checkpoint`` of a short run, timed as a whole command;
5. scaling out: ``msareid ablate --jobs G`` over all G visible GPUs (each run must see its own
   GPU), and one ``torchrun`` training with as many ranks as GPUs (one if there is one), its
   images/s and world size read from the run's log.

Writes ``gpu_check.json`` and ``gpu_check.md`` into ``--out``. ``--dry-run`` does every step on the
CPU at toy size (the test suite runs it) so that the script is known to work before a GPU is lent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cuda_tests(out: Path) -> dict:
    """Run ``pytest -m cuda``; the counts of passed / failed / skipped tests and the tail of the log."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", str(REPO / "tests")]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    (out / "cuda_tests.log").write_text(done.stdout + done.stderr)
    summary = (done.stdout.strip().splitlines() or ["no output"])[-1]
    counts = {k: 0 for k in ("passed", "failed", "skipped", "error")}
    for part in summary.replace("=", "").split(","):
        words = part.split()
        if len(words) >= 2 and words[0].isdigit():
            counts[words[1].rstrip("s") if words[1].startswith("error") else words[1]] = int(words[0])
    return {"exit_code": done.returncode, "summary": summary.strip(), **counts,
            "seconds": round(time.perf_counter() - t0, 1)}


def _dataset(out: Path, ids: int, images: int, workers: int) -> Path:
    from msareid.data.synthetic import SysuSpec, write_sysu

    root = out / "data"
    if not root.exists():
        write_sysu(root, SysuSpec(ids=ids, rgb_images=images, ir_images=images), workers=workers)
    return root


def _config(root: Path, out: Path, args: argparse.Namespace, msa: bool, amp: bool, device: str):
    from msareid.recipes import load_config

    return load_config(str(REPO / "configs" / "sysu.toml"), [
        f'data.root="{root}"', f'data.cache_dir="{out / "cache"}"', f"data.height={args.height}",
        f"data.width={args.width}", f"data.num_workers={args.workers}", f"model.backbone={args.backbone}",
        "model.pretrained=none", f"model.r2i={str(msa).lower()}", f"model.i2r={str(msa).lower()}",
        f"train.amp={str(amp).lower()}", f"train.device={device}", "train.epochs=1",
    ])


def _train_rate(root: Path, out: Path, args: argparse.Namespace, msa: bool, amp: bool, device: str) -> dict:
    """Images/s and peak memory of ``args.steps`` timed steps of the training loop of ``msareid train``."""
    from msareid.engine import build_train_data
    from msareid.systems.network import build_model
    from msareid.systems.objective import MSAObjective
    from msareid.training.distributed import DistEnv
    from msareid.training.epoch import EpochPlan, Learner, train_one_epoch
    from msareid.training.logs import MetricsLog

    config = _config(root, out, args, msa, amp, device)
    dev = torch.device(device)
    env = DistEnv(device=dev)
    data = build_train_data(config, env, progress=False)
    data.sampler.set_epoch(0)
    model = build_model(config, len(data.labels))
    cuda = dev.type == "cuda"
    model.to(dev, memory_format=torch.channels_last if cuda else torch.preserve_format)
    objective = MSAObjective(model, config.loss)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3.5e-4, weight_decay=5e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and amp)
    log = MetricsLog(out, enabled=False)
    learner = Learner(objective, optimizer, scaler, env, log)
    how = dict(log_every=10**9, amp=cuda and amp, channels_last=cuda, progress=False)
    warm = args.warmup
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    train_one_epoch(learner, data.loader, EpochPlan(0, 0, warm, 3.5e-4, **how))
    _sync(dev)
    t0 = time.perf_counter()
    train_one_epoch(learner, data.loader, EpochPlan(0, warm, warm + args.steps, 3.5e-4, **how))
    _sync(dev)
    seconds = time.perf_counter() - t0
    batch = config.sampler.num_ids * config.sampler.num_instances
    per_step_f = batch * (2 + int(msa) * 2)
    return {"model": "MSA" if msa else "B", "amp": amp, "steps": args.steps,
            "step_ms": round(1000 * seconds / args.steps, 2),
            "images_per_s": round(2 * batch * args.steps / seconds, 1),  # RGB + IR inputs
            "f_images_per_s": round(per_step_f * args.steps / seconds, 1),  # everything through F
            "peak_gpu_mb": round(torch.cuda.max_memory_allocated(dev) / 2**20, 1) if cuda else None}


def _extraction(root: Path, out: Path, args: argparse.Namespace, device: str) -> dict:
    from msareid.data.cache import ImageCache
    from msareid.data.sysu import SysuMM01
    from msareid.inference import extract
    from msareid.systems.network import build_model

    config = _config(root, out, args, True, False, device)
    paths = [r.path for r in SysuMM01(root).query()][: args.extract_images]
    cache = ImageCache.build(paths, args.height, args.width, out / "cache")
    model = build_model(config, 10).to(device).eval()
    extract(model, [cache[i] for i in range(min(8, len(cache)))], args.height, args.width, 8, device=device)
    _sync(torch.device(device))
    t0 = time.perf_counter()
    feats = extract(model, cache, args.height, args.width, args.batch_size, device=device)
    _sync(torch.device(device))
    seconds = time.perf_counter() - t0
    return {"images": len(paths), "batch_size": args.batch_size, "images_per_s": round(len(paths) / seconds, 1),
            "dim": int(feats.bnneck.shape[1])}


def _evaluate_command(root: Path, out: Path, args: argparse.Namespace, device: str) -> dict:
    run = out / "eval_run"
    sets = [f'data.root="{root}"', f'data.cache_dir="{out / "cache"}"', f"data.height={args.height}",
            f"data.width={args.width}", f"model.backbone={args.backbone}", "model.pretrained=none",
            "train.epochs=1", f"train.max_steps_per_epoch={args.warmup}", f"train.device={device}",
            f"data.num_workers={args.workers}"]
    cmd = [sys.executable, "-m", "msareid", "train", "--config", str(REPO / "configs" / "sysu.toml"), "--out",
           str(run), "--no-progress"]
    for s in sets:
        cmd += ["--set", s]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "msareid", "evaluate", "--checkpoint", str(run / "last.pt"),
                           "--device", device, "--json"], check=True, capture_output=True, text=True)
    result = json.loads(done.stdout)
    return {"seconds": round(time.perf_counter() - t0, 1), "protocol": result["protocol"],
            "queries": result.get("queries"), "rank1": result["rank1"], "mAP": result["mAP"]}


def _ablate_over_gpus(root: Path, out: Path, gpus: int) -> dict:
    """A tiny ablation with one run a GPU (B and MSA, seeds 0, 1, ...), ``--jobs`` = GPUs: which GPU
    each run saw. Without a GPU: one run."""
    folder, seeds = out / "scale_ablate", ",".join(str(i) for i in range(max(1, -(-gpus // 2))))
    cmd = [sys.executable, "-m", "msareid", "ablate", "--config", str(REPO / "configs" / "tiny.toml"), "--rows",
           "table4", "--only", "B,MSA" if gpus > 1 else "B", "--seeds", seeds, "--jobs", str(max(1, gpus)),
           "--out", str(folder)]
    for s in (f'data.root="{root}"', f'data.cache_dir="{out / "cache"}"', "train.epochs=1",
              "train.max_steps_per_epoch=5", "eval.trials=1"):
        cmd += ["--set", s]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    seen = sorted(json.loads((run / "metrics.jsonl").read_text().splitlines()[0]).get("cuda_visible_devices") or "-"
                  for run in (folder / "runs").glob("*/seed*"))
    return {"runs": len(seen), "jobs": max(1, gpus), "gpus_seen": seen, "seconds": round(time.perf_counter() - t0, 1),
            "each_gpu_used": gpus == 0 or set(seen) == {str(i) for i in range(gpus)}}


def _torchrun(root: Path, out: Path, args: argparse.Namespace, gpus: int, device: str) -> dict:
    """One training with a rank per GPU: the world size and images/s its log reports."""
    ranks, run = max(1, gpus), out / "scale_torchrun"
    ids = 6 if 6 % ranks == 0 else ranks * max(1, round(6 / ranks))  # P must split over the ranks
    sets = [f'data.root="{root}"', f'data.cache_dir="{out / "cache"}"', f"data.height={args.height}",
            f"data.width={args.width}", f"model.backbone={args.backbone}", "model.pretrained=none",
            "train.epochs=1", f"train.max_steps_per_epoch={args.warmup + args.steps}", f"train.device={device}",
            f"data.num_workers={args.workers}", f"sampler.num_ids={ids}", "train.log_every=1"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}", "-m",
           "msareid", "train", "--config", str(REPO / "configs" / "sysu.toml"), "--out", str(run), "--no-progress"]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [x for x in lines if x["event"] == "step"]
    return {"ranks": ranks, "world_size": lines[0]["world_size"], "num_ids": ids, "steps": len(steps),
            "images_per_s": round(steps[-1]["images_per_s"], 1), "seconds": round(time.perf_counter() - t0, 1)}


def _markdown(report: dict) -> str:
    lines = [f"GPU check on {report['device']} (torch {report['torch']}, {report['date']}); "
             f"{report['backbone']} at {report['size']}, {report['steps']} timed steps after "
             f"{report['warmup']} warm-up steps.", "",
             f"CUDA tests: {report['cuda_tests']['summary']}", "",
             "| model | AMP | step (ms) | input images/s | images/s through F | peak GPU memory (MB) |",
             "|---|---|---|---|---|---|"]
    for r in report["training"]:
        lines.append(f"| {r['model']} | {'on' if r['amp'] else 'off'} | {r['step_ms']} | {r['images_per_s']} | "
                     f"{r['f_images_per_s']} | {r['peak_gpu_mb']} |")
    e, v = report["extraction"], report["evaluate"]
    lines += ["", f"Extraction: {e['images_per_s']} images/s ({e['images']} images, batch {e['batch_size']}).",
              f"`msareid evaluate --checkpoint` ({v['protocol']}): {v['seconds']} s as a whole command."]
    a, t = report["scale"]["ablate"], report["scale"]["torchrun"]
    lines += [f"`ablate --jobs {a['jobs']}`: {a['runs']} runs saw GPUs {', '.join(a['gpus_seen'])} "
              f"(each GPU used: {a['each_gpu_used']}) in {a['seconds']} s.",
              f"torchrun, {t['ranks']} rank(s) (world size {t['world_size']}, P = {t['num_ids']}): "
              f"{t['images_per_s']} input images/s over {t['steps']} steps, {t['seconds']} s as a whole.", ""]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "gpu"))
    p.add_argument("--dry-run", action="store_true", help="every step on the CPU at toy size")
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--height", type=int, default=288)
    p.add_argument("--width", type=int, default=144)
    p.add_argument("--ids", type=int, default=491, help="synthetic identities (491: SYSU-MM01's count)")
    p.add_argument("--images", type=int, default=14, help="images per (id, camera)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="loader workers")
    p.add_argument("--batch-size", type=int, default=128, help="extraction batch")
    p.add_argument("--extract-images", type=int, default=2000)
    p.add_argument("--skip-tests", action="store_true")
    args = p.parse_args()
    if args.dry_run:
        args.backbone, args.height, args.width, args.ids, args.images = "tiny", 64, 32, 12, 2
        args.steps, args.warmup, args.workers, args.extract_images, args.batch_size = 2, 1, 0, 16, 8
    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; use --dry-run to check the script on the CPU", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    report: dict = {"device": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu",
                    "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "dry_run": args.dry_run,
                    "backbone": args.backbone, "size": f"{args.height}x{args.width}", "steps": args.steps,
                    "warmup": args.warmup}
    report["cuda_tests"] = {"summary": "not run", "exit_code": 0} if args.skip_tests else _cuda_tests(out)
    print(f"cuda tests: {report['cuda_tests']['summary']}", flush=True)
    root = _dataset(out, args.ids, args.images, max(1, (os.cpu_count() or 1) - 1))
    report["training"] = []
    for msa in (False, True):
        for amp in ((True, False) if device == "cuda" else (False,)):
            r = _train_rate(root, out, args, msa, amp, device)
            report["training"].append(r)
            print(f"train {r}", flush=True)
    report["extraction"] = _extraction(root, out, args, device)
    print(f"extract {report['extraction']}", flush=True)
    report["evaluate"] = _evaluate_command(root, out, args, device)
    print(f"evaluate {report['evaluate']}", flush=True)
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    report["scale"] = {"ablate": _ablate_over_gpus(root, out, gpus),
                       "torchrun": _torchrun(root, out, args, gpus, device)}
    print(f"scale {report['scale']}", flush=True)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    md = _markdown(report)
    (out / "gpu_check.md").write_text(md)
    print(md)
    return 1 if report["cuda_tests"].get("exit_code") not in (0, 5) else 0


if __name__ == "__main__":
    sys.exit(main())
