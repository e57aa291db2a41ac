"""The main job: build the network and the data from a whole config, and train (one process or
many under torchrun), checkpointing so that a killed run resumes exactly where it stopped.

Reading top to bottom: :func:`train` sets up the process group, :func:`build_run` the data,
network, objective and optimiser, :func:`_train` the epochs, with :func:`save_checkpoint` and
:func:`restore_checkpoint` around them. Only the command line (``cli``, ``commands``) and the
ablation runner's child process (``ablation.job``) import this module; building a network from a
config is :mod:`msareid.systems.network`. No system is named here: each one's pieces, terms and
per-epoch numbers come through :mod:`msareid.systems`.
"""

from __future__ import annotations

import contextlib
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
from msareid.allocator import reuse_freed_memory
from msareid.config import Config, config_to_dict, write_resolved
from msareid.data.cache import ImageCache, default_cache_dir
from msareid.data.dataset import ImageDataset, PairedDataset, train_loader
from msareid.data.datasets import open_dataset
from msareid.data.records import Record, label_map, labels_of
from msareid.data.sampler import CrossModalitySampler
from msareid.data.transforms import EraseEach, channel_aug_transforms, train_transform
from msareid.errors import UserError
from msareid.fileio import atomic_path, remove_stale_temporaries
from msareid.locks import exclusive
from msareid.models import MSANet
from msareid.systems.base import Hooks
from msareid.systems.network import build_model, head_modules, initial_state, next_state
from msareid.systems.objective import MSAObjective
from msareid.training import checkpoint as ckpt_io
from msareid.training import distributed
from msareid.training.distributed import DistEnv
from msareid.training.epoch import EpochPlan, Learner, LossSums, train_one_epoch
from msareid.training.global_batch import gather_blocks, synchronise_batchnorm
from msareid.training.logs import MetricsLog, read_metrics
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
    tf_rgb = tf_ir = train_transform(d.height, d.width, d.pad, in_loader)
    second = None
    if d.channel_aug:  # CAJ: RGB view 1, a second RGB view, IR, each with its own pipeline
        tf_rgb, second, tf_ir = channel_aug_transforms(d.height, d.width, d.pad)
    dataset = PairedDataset(ImageDataset(_cache(rgb, config, env, "rgb", progress), labels_of(rgb, mapping), tf_rgb),
                            ImageDataset(_cache(ir, config, env, "ir", progress), labels_of(ir, mapping), tf_ir),
                            rgb_second=second)
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
    last_losses: dict[str, float] = field(default_factory=dict)  # this rank's means of the last epoch
    seconds: float = 0.0
    rank: int = 0
    model: MSANet | None = None


def train(config: Config, out_dir: str | os.PathLike[str], resume: bool = False, progress: bool = True) -> TrainSummary:
    """Train ``config`` into ``out_dir`` (``last.pt``, ``epoch_NNN.pt``, ``metrics.jsonl``, ``config.toml``).

    With ``resume``, continue from ``out_dir/last.pt``: model, optimiser, scaler, epoch, position
    in the epoch and random states are restored, so the result equals an uninterrupted run.
    """
    env = distributed.setup(config.train.device)
    try:
        owner = exclusive(out_dir, "msareid train") if env.is_main else contextlib.nullcontext()
        with owner:  # one writer a run folder: a second train or resume of it is refused
            return _train(config, Path(out_dir), resume, progress, env)
    finally:
        distributed.cleanup(env)


@dataclass
class TrainingRun:
    """What one training process holds: the data, the network, its objective and optimiser."""

    config: Config
    out: Path
    env: DistEnv
    data: TrainData
    model: MSANet
    objective: torch.nn.Module  # the objective, wrapped in DistributedDataParallel when distributed
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    log: MetricsLog
    written: set[Path] = field(default_factory=set)  # epoch checkpoints this process wrote (the ones it may prune)
    state: dict[str, float] = field(default_factory=dict)  # the systems' numbers for the current epoch

    @property
    def cuda(self) -> bool:
        return self.env.device.type == "cuda"


def build_optimizer(model: MSANet, config: Config) -> torch.optim.Optimizer:
    """Adam (the paper) or SGD with momentum and Nesterov over the trainable parameters.

    BNNeck, classifier and the heads systems name (:func:`~msareid.systems.network.head_modules`)
    learn at ``train.lr``, every other parameter (backbone, stems, non-local blocks, ISA) at
    ``train.lr x train.base_lr_factor``, as the references' parameter groups; each group carries its
    ``lr_factor`` so that the schedule sets ``lr x lr_factor`` each epoch. With a factor of 1 all
    parameters are one group.
    """
    t = config.train
    params = [p for p in model.parameters() if p.requires_grad]
    if t.base_lr_factor == 1.0:
        groups = [{"params": params, "lr_factor": 1.0}]
    else:
        head = {id(p) for m in head_modules(model) for p in m.parameters()}
        groups = [{"params": [p for p in params if id(p) not in head], "lr_factor": t.base_lr_factor},
                  {"params": [p for p in params if id(p) in head], "lr_factor": 1.0}]
    for g in groups:
        g["lr"] = t.lr * g["lr_factor"]
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, nesterov=t.nesterov,
                               weight_decay=t.weight_decay)
    return torch.optim.Adam(groups, lr=t.lr, weight_decay=t.weight_decay)


def build_run(config: Config, out: Path, env: DistEnv, log: MetricsLog, progress: bool = True) -> TrainingRun:
    """Data, network (on the device), objective (Eq. 11) and optimiser of ``config``."""
    t = config.train
    cuda = env.device.type == "cuda"
    data = build_train_data(config, env, progress)
    model = build_model(config, num_classes=len(data.labels))
    model.to(env.device, memory_format=torch.channels_last if t.channels_last else torch.preserve_format)
    erase = EraseEach(config.data.random_erasing) if config.data.erasing_stage == "after_isa" else None
    if erase is not None and config.data.random_erasing > 0 and env.world_size > 1:
        raise UserError("data.erasing_stage = after_isa draws each process's erasing from its own generator, so "
                        f"{env.world_size} processes would not train as one; use data.erasing_stage = before_isa "
                        "(every shipped config does) or one process")
    gather = None
    if env.distributed:  # the global batch: BatchNorm statistics and triplet mining across ranks
        model = synchronise_batchnorm(model, env.device)
        gather = gather_blocks
    objective: torch.nn.Module = MSAObjective(model, config.loss, Hooks(erase, gather))
    if env.distributed:
        objective = torch.nn.parallel.DistributedDataParallel(
            objective, device_ids=[env.device.index] if cuda else None)
    optimizer = build_optimizer(model, config)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and t.amp)
    return TrainingRun(config, out, env, data, model, objective, optimizer, scaler, log, state=initial_state(model))


def _train(config: Config, out: Path, resume: bool, progress: bool, env: DistEnv) -> TrainSummary:
    t = config.train
    threads.configure(t.threads)
    if t.reuse_memory:
        reuse_freed_memory()
    _seed_everything(t.seed, t.deterministic)
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out)  # left by a process killed while writing a checkpoint
    log = MetricsLog(out, enabled=False)  # opened below, once the run's folder is settled
    run = build_run(config, out, env, log, progress)
    epoch, step, running = 0, 0, LossSums()
    if resume:
        epoch, step, running = restore_checkpoint(out / "last.pt", run)
    elif env.is_main:
        (out / "metrics.jsonl").unlink(missing_ok=True)  # a run killed before its first checkpoint: start anew
    if env.is_main:
        write_resolved(config, out)  # only now: a refused resume leaves the folder describing its last.pt
    run.log = MetricsLog(out, enabled=env.is_main, tensorboard=t.tensorboard)
    run.log.write({"event": "resume" if resume else "start", "epoch": epoch, "step": step,
                   "world_size": env.world_size, "ddp": env.distributed, "device": str(env.device),
                   "threads": torch.get_num_threads(), "steps_per_epoch": run.data.steps_per_epoch,
                   "num_classes": len(run.data.labels), "cwd": os.getcwd(), "pid": os.getpid(),
                   "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                   "config": config_to_dict(config)})
    start, losses = time.perf_counter(), {}
    if resume and step == 0:  # killed while evaluating the epoch of its checkpoint: evaluate it now
        _evaluate_if_due(run, epoch, already=read_metrics(out) if env.is_main else [])
    while epoch < t.epochs:
        lr = lr_at(epoch, t.lr, t.warmup_epochs, t.milestones, t.lr_decay)
        used = run.state  # the systems' numbers of this epoch, logged with it
        losses = _train_epoch(run, epoch, step, lr, running, progress)
        epoch, step, running = epoch + 1, 0, LossSums()
        run.state = next_state(used, losses)
        run.log.write({"event": "epoch", "epoch": epoch, "lr": lr, "losses": losses, **used})
        save_checkpoint(run, epoch, 0, None)
        _evaluate_if_due(run, epoch)
    seconds = time.perf_counter() - start
    run.log.write({"event": "end", "epoch": epoch, "seconds": round(seconds, 3)})
    run.log.close()
    return TrainSummary(out, t.epochs, run.data.steps_per_epoch, losses, seconds, env.rank, run.model)


def _train_epoch(run: TrainingRun, epoch: int, step: int, lr: float, sums: LossSums,
                 progress: bool) -> dict[str, float]:
    """Steps ``step``.. of epoch ``epoch`` (0-based), checkpointing every ``train.checkpoint_every``
    steps within it; returns the mean of each loss term over the epoch's steps."""
    t, steps = run.config.train, run.data.steps_per_epoch
    run.data.sampler.set_epoch(epoch, start=step)
    objective = run.objective.module if isinstance(run.objective, torch.nn.parallel.DistributedDataParallel) \
        else run.objective
    objective.hooks = dataclasses.replace(objective.hooks, state=dict(run.state))

    def checkpoint_within_epoch(done: int) -> None:
        if t.checkpoint_every and done % t.checkpoint_every == 0 and done < steps:
            save_checkpoint(run, epoch, done, sums)

    learner = Learner(run.objective, run.optimizer, run.scaler, run.env, run.log)
    plan = EpochPlan(epoch, step, steps, lr, t.log_every, amp=run.cuda and t.amp, channels_last=t.channels_last,
                     progress=progress)
    return train_one_epoch(learner, run.data.loader, plan, sums, checkpoint_within_epoch)


def save_checkpoint(run: TrainingRun, epoch: int, step: int, sums: LossSums | None) -> None:
    """Write ``last.pt`` atomically (rank 0 only): the state after ``step`` steps of epoch ``epoch``
    (``step`` 0: the end of epoch ``epoch``, also kept as ``epoch_NNN.pt``); ``sums`` are the loss
    sums of the epoch so far, so a resumed epoch reports the mean over all its steps."""
    if not run.env.is_main:
        return
    t, out, labels = run.config.train, run.out, run.data.labels
    state = {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
             "scaler": run.scaler.state_dict(), "epoch": epoch, "step": step, "rng": ckpt_io.rng_state(),
             "config": config_to_dict(run.config), "num_classes": len(labels),
             "label_map": {int(k): int(v) for k, v in labels.items()}, "versions": ckpt_io.versions(),
             "epoch_losses": None if sums is None else sums.state(), **run.state}
    ckpt_io.save_atomic(state, out / "last.pt")
    if sums is None:
        _copy(out / "last.pt", out / f"epoch_{epoch:03d}.pt")
        run.written.add(out / f"epoch_{epoch:03d}.pt")
        ckpt_io.prune(out, t.keep_last, t.keep_every, only=run.written)
    run.log.write({"event": "checkpoint", "epoch": epoch, "step": step, "path": str(out / "last.pt")})


def restore_checkpoint(path: Path, run: TrainingRun) -> tuple[int, int, LossSums]:
    """Load ``path`` into the run's model, optimiser, scaler and the random generators; returns the
    epoch, the step and the loss sums of that epoch's steps before it.

    A checkpoint that does not fit the model of the config (another backbone, dataset or ISA
    setting given with ``--set``) is refused before anything of the run is changed.
    """
    state = ckpt_io.load_checkpoint(path)
    try:
        run.model.load_state_dict(state["model"])
        run.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:160]
        raise UserError(f"{path} does not fit the model of this config ({first}); resume without changing "
                        "the backbone, dataset or ISA settings, or start a new run with --out") from None
    if state["scaler"] or not run.scaler.is_enabled():  # a CPU checkpoint holds no scaler state for a GPU
        run.scaler.load_state_dict(state["scaler"])
    ckpt_io.set_rng_state(state["rng"])
    run.state = {key: float(state.get(key, start)) for key, start in initial_state(run.model).items()}
    return int(state["epoch"]), int(state["step"]), LossSums.from_state(state.get("epoch_losses"))


def _evaluate_if_due(run: TrainingRun, epoch: int, already: list[dict[str, Any]] = ()) -> None:
    """After ``epoch`` epochs, when ``eval.every`` divides it: the test protocol of ``config.eval``
    on the training dataset, logged as an ``eval`` line of ``metrics.jsonl`` (rank 0; the others
    wait). The figures only inform: the run's model stays the last epoch's, whatever they say.
    Random states are put back afterwards, so a run with evaluations trains exactly as one without."""
    every = run.config.eval.every
    if not every or epoch == 0 or epoch % every:
        return
    if run.env.is_main and not any(r.get("event") == "eval" and r.get("epoch") == epoch for r in already):
        from msareid.inference import evaluate_model

        rng = ckpt_io.rng_state()
        c = run.config
        results = evaluate_model(run.model, c, c.data.name, c.data.root, run.env.device)
        ckpt_io.set_rng_state(rng)
        first, *others = results  # the headline feature, then the others (BNNeck where a head is the test feature)
        keys = ("rank1", "rank10", "mAP", "mINP")
        mean = results[first].mean()
        beside = {name: {k: results[name].mean()[k] for k in keys} for name in others if name != "pooled"}
        run.log.write({"event": "eval", "epoch": epoch, "protocol": results[first].protocol, "feature": first,
                       **{k: mean[k] for k in keys}, **beside})
    run.env.barrier()


def _copy(src: Path, dst: Path) -> None:
    """``dst`` as a file of its own with ``src``'s bytes, written atomically: the epoch checkpoint
    is the fallback of ``last.pt``, so damage to one (a truncation, a bad disk block) leaves the other."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
