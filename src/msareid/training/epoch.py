"""One training epoch, written out plainly, with a stop on the first non-finite loss."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from msareid.errors import UserError
from msareid.systems.base import Batch
from msareid.systems.objective import TOTAL, headline
from msareid.training.distributed import DistEnv
from msareid.training.global_batch import average_over_ranks
from msareid.training.logs import MetricsLog


@dataclass
class LossSums:
    """Running sums of the loss terms over the steps of one epoch so far; checkpoints written within
    an epoch carry them, so an epoch resumed mid-way reports the mean over all of its steps."""

    totals: dict[str, float] = field(default_factory=dict)
    count: int = 0

    def add(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.totals[k] = self.totals.get(k, 0.0) + v
        self.count += 1

    def means(self) -> dict[str, float]:
        return {k: v / max(self.count, 1) for k, v in self.totals.items()}

    def state(self) -> dict[str, object]:
        return {"totals": dict(self.totals), "count": self.count}

    @classmethod
    def from_state(cls, state: dict | None) -> LossSums:
        if not state:
            return cls()
        return cls({str(k): float(v) for k, v in state["totals"].items()}, int(state["count"]))


class NonFiniteLoss(UserError):
    """A loss term became NaN or infinite; the run stops before the update."""


def _global_values(terms: dict[str, torch.Tensor], epoch: int, step: int) -> dict[str, float]:
    """The loss terms of the global batch: each term averaged over the ranks (one process: its own),
    which is the value one process would compute. A non-finite term on any rank stops every rank
    together (the others would otherwise wait for it forever), before the update."""
    names = list(terms)
    values = average_over_ranks(torch.stack([terms[n].detach().float() for n in names])).tolist()
    bad = [f"{n} = {v}" for n, v in zip(names, values) if not math.isfinite(v)]
    if bad:
        raise NonFiniteLoss(f"non-finite loss at epoch {epoch + 1}, step {step + 1}: {', '.join(bad)}; "
                            "stopped before the update, the last checkpoint is intact")
    return dict(zip(names, values))


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """``lr`` times each parameter group's ``lr_factor`` (1 when absent; e.g. 0.1 for a backbone group)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_factor", 1.0)


@dataclass(frozen=True)
class Learner:
    """What trains: the objective (a module returning the loss terms of a :class:`Batch`), the
    optimiser and gradient scaler, the process's place among the ranks and the metrics log."""

    objective: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    env: DistEnv
    log: MetricsLog


@dataclass(frozen=True)
class EpochPlan:
    """Which steps of which epoch (0-based) to train, at which learning rate, and how."""

    epoch: int
    first_step: int
    steps: int
    lr: float
    log_every: int = 20
    amp: bool = False
    channels_last: bool = False
    progress: bool = True


def to_batch(raw: dict[str, torch.Tensor], device: torch.device, memory: torch.memory_format) -> Batch:
    """A loader's batch (a dict by name, :class:`~msareid.data.dataset.PairedDataset`) on ``device``."""
    images = {k: raw[k].to(device, non_blocking=True, memory_format=memory)
              for k in ("rgb", "ir", "rgb_second") if k in raw}
    return Batch(images["rgb"], images["ir"], raw["rgb_label"].to(device, non_blocking=True),
                 images.get("rgb_second"))


def train_one_epoch(learner: Learner, loader: Iterable, plan: EpochPlan, sums: LossSums | None = None,
                    on_step: Callable[[int], None] | None = None) -> dict[str, float]:
    """Train from batch ``plan.first_step`` to ``plan.steps`` of ``plan.epoch``; returns the mean of
    each loss term.

    ``sums`` holds the terms of the steps before ``first_step`` (a resumed epoch) and is updated in
    place. ``on_step(step)`` runs after each update (checkpointing mid-epoch); batches come from
    ``loader`` as dicts (``rgb``, ``ir``, ``rgb_label``, ``ir_label``, and ``rgb_second`` with
    channel augmentation), RGB sample k and IR sample k of one identity.
    """
    env, log, sums = learner.env, learner.log, sums if sums is not None else LossSums()
    epoch, steps, lr = plan.epoch, plan.steps, plan.lr
    set_learning_rate(learner.optimizer, lr)
    learner.objective.train()
    count, images, start = 0, 0, time.perf_counter()
    live = plan.progress and env.is_main and sys.stderr.isatty()  # a bar on a terminal, one line a epoch in a log
    bar = tqdm(total=steps, initial=plan.first_step, desc=f"epoch {epoch + 1}", disable=not live,
               dynamic_ncols=True, leave=False)
    memory = torch.channels_last if plan.channels_last else torch.contiguous_format
    for step, raw in zip(range(plan.first_step, steps), loader):
        batch = to_batch(raw, env.device, memory)
        with torch.autocast(env.device.type, dtype=torch.float16, enabled=plan.amp):
            terms = learner.objective(batch)
        values = _global_values(terms, epoch, step)
        _update(learner, terms[TOTAL])
        sums.add(values)
        count += 1
        images += (2 + (batch.rgb_second is not None)) * batch.rgb.shape[0] * env.world_size
        rate = images / max(time.perf_counter() - start, 1e-9)
        bar.set_postfix({**{k: f"{v:.3f}" for k, v in headline(values).items()}, "ips": f"{rate:.0f}"})
        bar.update(1)
        if (step + 1) % plan.log_every == 0 or step + 1 == steps:
            log.write({"event": "step", "epoch": epoch + 1, "step": step + 1, "steps": steps, "lr": lr,
                       "images_per_s": rate, "losses": values})
        if on_step is not None:
            on_step(step + 1)
    bar.close()
    means = sums.means()
    if plan.progress and env.is_main and not live and count:
        terms = " ".join(f"{k} {v:.3f}" for k, v in headline(means).items())
        print(f"epoch {epoch + 1}: {terms}, lr {lr:.2e}, {rate:.0f} images/s", flush=True)
    return means


def _update(learner: Learner, total: torch.Tensor) -> None:
    """One optimiser step on ``total`` (through the gradient scaler under mixed precision)."""
    learner.optimizer.zero_grad(set_to_none=True)
    learner.scaler.scale(total).backward()
    learner.scaler.step(learner.optimizer)
    learner.scaler.update()
