"""The main job: build the network and the data from a whole config, and train (one process or
many under torchrun), checkpointing so that a killed run resumes exactly where it stopped.

This module and :mod:`msareid.cli` are the only ones that see a whole :class:`Config`.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from msareid import threads
from msareid.config import Config, config_to_dict, write_resolved
from msareid.data.cache import ImageCache, default_cache_dir
from msareid.data.dataset import ImageDataset, PairedDataset, train_loader
from msareid.data.datasets import open_dataset
from msareid.data.records import Record, label_map, labels_of
from msareid.data.sampler import CrossModalitySampler
from msareid.data.transforms import EraseEach, train_transform
from msareid.errors import UserError
from msareid.fileio import remove_stale_temporaries
from msareid.losses.objective import MSAObjective
from msareid.models import MSANet
from msareid.models.trained import build_model
from msareid.training import checkpoint as ckpt_io
from msareid.training import distributed
from msareid.training.distributed import DistEnv
from msareid.training.epoch import LossSums, train_one_epoch
from msareid.training.logs import MetricsLog
from msareid.training.schedule import lr_at


def _cache(records: list[Record], config: Config, env: DistEnv, name: str, progress: bool) -> ImageCache:
    """Rank 0 decodes first; the other ranks then open the same cache file."""
    d = config.data
    folder = default_cache_dir(d.cache_dir)
    if env.is_main:
        cache = ImageCache.build([r.path for r in records], d.height, d.width, folder, progress=progress,
                                 desc=f"decode {name}")
    env.barrier()
    if not env.is_main:
        cache = ImageCache.build([r.path for r in records], d.height, d.width, folder)
    return cache


@dataclass
class TrainData:
    """The paired training set, its sampler and loader, and the label map."""

    dataset: PairedDataset
    sampler: CrossModalitySampler
    loader: Any
    labels: dict[int, int]
    steps_per_epoch: int


def build_train_data(config: Config, env: DistEnv, progress: bool = True) -> TrainData:
    """Records -> cached images -> paired dataset, sampler (sharded by rank) and loader."""
    d = config.data
    rgb, ir = open_dataset(d.name, d.root, d.trial).train()
    mapping = label_map(rgb + ir)
    in_loader = d.random_erasing if d.erasing_stage == "before_isa" else 0.0
    tf = train_transform(d.height, d.width, d.pad, in_loader)
    dataset = PairedDataset(ImageDataset(_cache(rgb, config, env, "rgb", progress), labels_of(rgb, mapping), tf),
                            ImageDataset(_cache(ir, config, env, "ir", progress), labels_of(ir, mapping), tf))
    num_ids = _identities_per_batch(config.sampler.num_ids, dataset, env)
    sampler = CrossModalitySampler(dataset.rgb.labels, dataset.ir.labels, num_ids,
                                   config.sampler.num_instances, config.train.seed, env.rank, env.world_size)
    steps = len(sampler)
    if config.train.max_steps_per_epoch:
        steps = min(steps, config.train.max_steps_per_epoch)
    loader = train_loader(dataset, sampler, d.num_workers)
    return TrainData(dataset, sampler, loader, mapping, steps)


def _identities_per_batch(wanted: int, dataset: PairedDataset, env: DistEnv) -> int:
    """``sampler.num_ids``, or fewer (with a warning) when the training set has fewer identities
    with both RGB and IR images; at least two are needed for the triplet loss's negatives."""
    shared = len(np.intersect1d(dataset.rgb.labels, dataset.ir.labels))
    if shared >= wanted:
        return wanted
    if shared < 2:
        raise UserError(f"the training set has {shared} identity with both RGB and IR images; "
                        "training needs at least 2")
    if env.is_main:
        print(f"warning: sampler.num_ids = {wanted} but only {shared} training identities have both RGB and IR "
              f"images; batches hold {shared}", file=sys.stderr)
    return shared


def _seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


@dataclass
class TrainSummary:
    """What a finished (or resumed-and-finished) run reports."""

    out_dir: Path
    epochs: int
    steps_per_epoch: int
    last_losses: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    batches_seen: list[int] = field(default_factory=list)  # first RGB index of each batch of this rank
    rank: int = 0
    model: MSANet | None = None


def train(config: Config, out_dir: str | os.PathLike[str], resume: bool = False, progress: bool = True) -> TrainSummary:
    """Train ``config`` into ``out_dir`` (``last.pt``, ``epoch_NNN.pt``, ``metrics.jsonl``, ``config.toml``).

    With ``resume``, continue from ``out_dir/last.pt``: model, optimiser, scaler, epoch, position
    in the epoch and random states are restored, so the result equals an uninterrupted run.
    """
    env = distributed.setup(config.train.device)
    try:
        return _train(config, Path(out_dir), resume, progress, env)
    finally:
        distributed.cleanup(env)


def _train(config: Config, out: Path, resume: bool, progress: bool, env: DistEnv) -> TrainSummary:
    t = config.train
    cuda = env.device.type == "cuda"
    threads.configure(t.threads)
    _seed_everything(t.seed, t.deterministic)
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out)  # left by a process killed while writing a checkpoint
    data = build_train_data(config, env, progress)
    model = build_model(config, num_classes=len(data.labels))
    model.to(env.device, memory_format=torch.channels_last if (cuda and t.channels_last) else torch.preserve_format)
    erase = EraseEach(config.data.random_erasing) if config.data.erasing_stage == "after_isa" else None
    objective: torch.nn.Module = MSAObjective(model, erase=erase, **dataclasses.asdict(config.loss))
    if env.distributed:
        objective = torch.nn.parallel.DistributedDataParallel(
            objective, device_ids=[env.device.index] if cuda else None)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=t.lr,
                                 weight_decay=t.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and t.amp)
    epoch, step, running = 0, 0, LossSums()
    if resume:
        epoch, step, running = _restore(out / "last.pt", model, optimizer, scaler)
    elif env.is_main:
        (out / "metrics.jsonl").unlink(missing_ok=True)  # a run killed before its first checkpoint: start anew
    if env.is_main:
        write_resolved(config, out)  # only now: a refused resume leaves the folder describing its last.pt
    log = MetricsLog(out, enabled=env.is_main, tensorboard=t.tensorboard)
    log.write({"event": "resume" if resume else "start", "epoch": epoch, "step": step, "world_size": env.world_size,
               "ddp": env.distributed, "device": str(env.device), "threads": torch.get_num_threads(),
               "steps_per_epoch": data.steps_per_epoch,
               "num_classes": len(data.labels), "config": config_to_dict(config)})

    def save(epoch_done: int, next_step: int, epoch_end: bool) -> None:
        if not env.is_main:
            return
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                 "epoch": epoch_done, "step": next_step, "rng": ckpt_io.rng_state(),
                 "config": config_to_dict(config), "num_classes": len(data.labels),
                 "label_map": {int(k): int(v) for k, v in data.labels.items()},
                 "versions": ckpt_io.versions(), "epoch_losses": None if epoch_end else running.state()}
        ckpt_io.save_atomic(state, out / "last.pt")
        if epoch_end:
            _link_or_copy(out / "last.pt", out / f"epoch_{epoch_done:03d}.pt")
            ckpt_io.prune(out, t.keep_last, t.keep_every)
        log.write({"event": "checkpoint", "epoch": epoch_done, "step": next_step, "path": str(out / "last.pt")})

    summary = TrainSummary(out, t.epochs, data.steps_per_epoch, rank=env.rank)
    start = time.perf_counter()
    seen = _BatchRecorder(data.sampler)
    while epoch < t.epochs:
        data.sampler.set_epoch(epoch, start=step)
        lr = lr_at(epoch, t.lr, t.warmup_epochs, t.milestones, t.lr_decay)
        current = epoch

        def on_step(done: int, current: int = current) -> None:
            seen.record(current, done)
            if t.checkpoint_every and done % t.checkpoint_every == 0 and done < data.steps_per_epoch:
                save(current, done, epoch_end=False)

        losses = train_one_epoch(objective, data.loader, optimizer, scaler, lr, epoch, step, data.steps_per_epoch,
                                 env, log, t.log_every, amp=cuda and t.amp, channels_last=cuda and t.channels_last,
                                 on_step=on_step, progress=progress, sums=running)
        epoch, step, running = epoch + 1, 0, LossSums()
        log.write({"event": "epoch", "epoch": epoch, "lr": lr, **losses})
        save(epoch, 0, epoch_end=True)
        if t.eval_every and epoch % t.eval_every == 0 and env.is_main:
            log.write({"event": "eval", "epoch": epoch, **_evaluate_during_training(model, config, env)})
        env.barrier()
        summary.last_losses = losses
    summary.seconds = time.perf_counter() - start
    summary.batches_seen = seen.first_indices
    summary.model = model
    log.write({"event": "end", "epoch": epoch, "seconds": round(summary.seconds, 3)})
    log.close()
    return summary


def _restore(path: Path, model: MSANet, optimizer: torch.optim.Optimizer,
             scaler: torch.amp.GradScaler) -> tuple[int, int, LossSums]:
    """Load ``path`` into the model, optimiser, scaler and random generators; returns the epoch, the
    step and the loss sums of that epoch's steps before it.

    A checkpoint that does not fit the model of the config (another backbone, dataset or ISA
    setting given with ``--set``) is refused before anything of the run is changed.
    """
    state = ckpt_io.load_checkpoint(path)
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:160]
        raise UserError(f"{path} does not fit the model of this config ({first}); resume without changing "
                        "the backbone, dataset or ISA settings, or start a new run with --out") from None
    if state["scaler"] or not scaler.is_enabled():  # a CPU checkpoint holds no scaler state for a GPU
        scaler.load_state_dict(state["scaler"])
    ckpt_io.set_rng_state(state["rng"])
    return int(state["epoch"]), int(state["step"]), LossSums.from_state(state.get("epoch_losses"))


def _evaluate_during_training(model: MSANet, config: Config, env: DistEnv) -> dict[str, Any]:
    """The test protocol of ``config.eval`` on the training dataset, for the metrics log only: the
    reported model stays the last epoch's, whatever these figures say."""
    from msareid.inference import evaluate_model

    results = evaluate_model(model, config, config.data.name, config.data.root, env.device)
    mean = results["bnneck"].mean()
    return {"protocol": results["bnneck"].protocol, **{k: mean[k] for k in ("rank1", "rank10", "mAP", "mINP")}}


class _BatchRecorder:
    """Remembers the first RGB index of every batch this rank trained on (for checks and tests)."""

    def __init__(self, sampler: CrossModalitySampler) -> None:
        self.sampler = sampler
        self.first_indices: list[int] = []
        self._epoch, self._batches = -1, []

    def record(self, epoch: int, done: int) -> None:
        if epoch != self._epoch:
            s = self.sampler
            self._epoch, self._batches = epoch, s.epoch_batches()[s.rank :: s.world_size]
        self.first_indices.append(self._batches[done - 1][0][0])


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)  # the same bytes; a later last.pt replaces its own name only
    except OSError:
        shutil.copy2(src, dst)
