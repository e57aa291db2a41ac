"""CUDA paths: mixed precision, channels-last, NCCL, checkpoints moving between GPU and CPU.

These run where a CUDA device is (``bench/gpu_check.sh`` runs them on a lent GPU machine); on a
machine without one they are reported as skipped, with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from msareid.cli import main
from msareid.training.checkpoint import load_checkpoint

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

REPO = Path(__file__).resolve().parents[1]


def _args(root: Path, tmp: Path, **extra: object) -> list[str]:
    sets = {"data.root": root, "data.cache_dir": tmp / "cache", "data.height": 64, "data.width": 32,
            "train.epochs": 2, "train.max_steps_per_epoch": 3, "train.warmup_epochs": 1, "sampler.num_ids": 3,
            "sampler.num_instances": 2, "eval.trials": 2, **extra}
    out = []
    for k, v in sets.items():
        out += ["--set", f"{k}={v}" if not isinstance(v, Path) else f'{k}="{v}"']
    return out


def _epoch_losses(run: Path) -> list[dict]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [x for x in lines if x["event"] == "epoch"]


DDAG = {"model.r2i": "false", "model.i2r": "false", "model.two_stream": "true", "model.parts": 3,
        "model.graph_attention": "true", "loss.source_loss": "none", "loss.target_loss": "none"}


@pytest.mark.parametrize("system", ["msa", "ddag"])
@pytest.mark.parametrize("amp", [True, False])
def test_training_on_the_gpu_with_amp_and_channels_last(synth_sysu: Path, tmp_path: Path, amp: bool,
                                                        system: str) -> None:
    run = tmp_path / "run"
    args = _args(synth_sysu, tmp_path, **{"train.device": "cuda", "train.amp": str(amp).lower(),
                                          "train.channels_last": "true", **(DDAG if system == "ddag" else {})})
    assert main(["train", "--config", str(REPO / "configs" / "tiny.toml"), "--out", str(run), "--no-progress",
                 *args]) == 0
    state = load_checkpoint(run / "last.pt")
    assert state["epoch"] == 2 and all(v.device.type == "cpu" for v in state["model"].values())
    assert bool(state["scaler"]) == amp  # the GradScaler's state travels with the checkpoint under AMP
    for e in _epoch_losses(run):
        assert all(torch.isfinite(torch.tensor(v)) for k, v in e.items() if k not in ("event", "epoch", "time"))
    start = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert start["device"].startswith("cuda")


@pytest.mark.parametrize(("first", "second"), [("cuda", "cpu"), ("cpu", "cuda")])
def test_a_checkpoint_resumes_on_the_other_device(synth_sysu: Path, tmp_path: Path, first: str, second: str) -> None:
    run = tmp_path / "run"
    args = _args(synth_sysu, tmp_path, **{"train.device": first, "train.epochs": 1})
    assert main(["train", "--config", str(REPO / "configs" / "tiny.toml"), "--out", str(run), "--no-progress",
                 *args]) == 0
    assert main(["train", "--resume", str(run), "--set", "train.epochs=2", "--set", f"train.device={second}",
                 "--no-progress"]) == 0
    assert load_checkpoint(run / "last.pt")["epoch"] == 2
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    devices = [x["device"].split(":")[0] for x in lines if x["event"] in ("start", "resume")]
    assert devices == [first, second]
    assert main(["evaluate", "--checkpoint", str(run / "last.pt"), "--device", second, "--json"]) == 0


def test_gpu_and_cpu_features_agree(tiny_checkpoint: Path, synth_sysu: Path) -> None:
    from msareid.extractor import FeatureExtractor, list_images

    images = list_images(synth_sysu / "cam3")[:16]
    cpu = FeatureExtractor(tiny_checkpoint, "cpu")(images)
    gpu = FeatureExtractor(tiny_checkpoint, "cuda")(images)
    assert abs(cpu - gpu).max() < 1e-3


def test_nccl_on_one_rank_under_torchrun(synth_sysu: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m", "msareid",
           "train", "--config", str(REPO / "configs" / "tiny.toml"), "--out", str(tmp_path / "run"), "--no-progress",
           *_args(synth_sysu, tmp_path, **{"train.device": "cuda", "train.epochs": 1})]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ})
    assert done.returncode == 0, done.stderr[-2000:]
    start = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert start["world_size"] == 1 and start["ddp"] and start["device"].startswith("cuda")
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1
