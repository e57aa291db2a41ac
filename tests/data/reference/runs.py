"""Reference runs: fixed short trainings of each system whose weights are recorded, so a change of
the code that should not change training can be checked to leave every weight bit-identical.

``record.py`` (beside this file) trains them and writes ``weights.json``; ``tests/test_reference.py``
trains them again and compares. Re-record only for a change that is meant to change training, and
say so in the commit. The runs are literal ``--set`` texts on ``configs/tiny.toml``, not rows of
the ablation runner, so that the settings stay the same whatever the code that names them.

The legacy checkpoint (``legacy.pt``) is a run of every network piece at once (two stems, part
aggregation, graph attention, both style adapters) on the small ``micro`` backbone, written by the
code of its day: loading, evaluating and resuming it checks that older checkpoints stay usable.
"""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
COMMON = ["data.height=32", "data.width=16", "data.pad=2", "data.num_workers=0", "train.epochs=2",
          "train.warmup_epochs=1", "train.max_steps_per_epoch=3", "train.log_every=1", "train.threads=1",
          "train.deterministic=true", "sampler.num_ids=3", "sampler.num_instances=2", "eval.every=0"]
NO_ISA = ["model.r2i=false", "model.i2r=false", 'loss.source_loss="none"', 'loss.target_loss="none"']
SGD = ['train.optimizer="sgd"', "train.lr=0.1", "train.base_lr_factor=0.1", "train.momentum=0.9",
       "train.nesterov=true", "train.weight_decay=0.0005", "train.milestones=[1]", "train.lr_decay=0.1",
       "data.random_erasing=0.0", "sampler.num_ids=4"]
AGW_NET = ["model.two_stream=true", 'model.non_local="one"', 'model.pooling="gem"', 'loss.triplet="wrt"']
DDAG_NET = ["model.two_stream=true", "model.parts=3", "model.graph_attention=true", 'loss.triplet="batch_hard"',
            "loss.margin=0.3"]
RUNS: dict[str, list[str]] = {
    "B": NO_ISA,
    "MSA": [],
    "AGW": SGD + AGW_NET + NO_ISA + ["loss.gamma=1.0"],
    "DDAG": SGD + DDAG_NET + NO_ISA + ["loss.gamma=1.0"],
    "MSA(AGW)": SGD + AGW_NET,
    "MSA+CA": ["data.channel_aug=true", "data.random_erasing=0.0"],
    "B(erase after ISA)": NO_ISA + ['data.erasing_stage="after_isa"'],
}
LEGACY = ['model.backbone="micro"', "model.two_stream=true", "model.parts=3", "model.graph_attention=true",
          "train.max_steps_per_epoch=2"] + SGD


def synthetic_spec() -> Any:
    from msareid.data.synthetic import SysuSpec

    return SysuSpec(ids=16, rgb_images=4, ir_images=4, seed=0)


def register_micro() -> None:
    """A four-block CNN of 8 to 16 channels (feature size 16) under the name ``micro``: the tiny
    CNN's layout (a stem, then four one-block stages), with every piece a fraction of its size."""
    from torch import nn

    from msareid.models import backbones

    def micro() -> nn.Module:
        def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        return nn.Sequential(*block(3, 8, 2), *block(8, 8, 2), *block(8, 8, 1), *block(8, 16, 2), *block(16, 16, 1))

    tiny = backbones.BACKBONES["tiny"]
    backbones.BACKBONES["micro"] = type(tiny)(micro, tiny.body, stem=tiny.stem, stages=tiny.stages)


def overrides(name: str, root: Path, cache: Path) -> list[str]:
    """The ``--set`` texts of reference run ``name`` on the synthetic set at ``root``."""
    settings = LEGACY if name == "legacy" else RUNS[name]
    return [f'data.root="{root}"', f'data.cache_dir="{cache}"', *COMMON, *settings]


def train_run(name: str, root: Path, out: Path) -> dict[str, torch.Tensor]:
    """Train reference run ``name`` into ``out``; its final model state."""
    from msareid.engine import train
    from msareid.recipes import load_config

    config = load_config(HERE.parents[2] / "configs" / "tiny.toml", overrides(name, root, out / "cache"))
    train(config, out / "run", progress=False)
    return torch.load(out / "run" / "last.pt", weights_only=True)["model"]


def digest(state: dict[str, torch.Tensor]) -> dict[str, str]:
    """SHA-256 of each tensor's bytes (with its dtype and shape): equal digests, equal weights."""
    out = {}
    for key, value in state.items():
        t = value.detach().cpu().contiguous()
        h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        out[key] = h.hexdigest()
    return out


def sums(state: dict[str, torch.Tensor]) -> dict[str, float]:
    """The sum of each floating tensor (float64): compared within a tolerance where the platform differs."""
    return {k: float(v.double().sum()) for k, v in state.items() if v.is_floating_point()}


def fingerprint() -> dict[str, str]:
    """What decides floating-point results on a CPU: the machine, torch and its vector instructions."""
    return {"machine": platform.machine(), "torch": torch.__version__.split("+")[0],
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
