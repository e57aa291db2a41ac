"""The run folders of an ablation: what state each is in (done, to evaluate, to resume, to
recover from an earlier checkpoint, to move aside, new), the config it was trained with, and its
``eval.json``. Read-only but for :func:`recover` and :func:`move_aside`, which the runner calls
under the folder's lock."""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from msareid.ablation.plan import PlannedRun
from msareid.ablation.stats import METRICS
from msareid.config import config_from_dict, config_to_dict, dump_toml, identity_keys_differing
from msareid.errors import UserError, warn
from msareid.fileio import atomic_path, write_text
from msareid.recipes import load_config


def checkpoint_state(path: Path) -> dict[str, Any] | None:
    """The ``epoch`` and ``config`` of the checkpoint at ``path``, None when it is missing or
    unreadable; read once for each version of the file (its size and modification time)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return _checkpoint_facts(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _checkpoint_facts(path: str, size: int, mtime_ns: int) -> dict[str, Any] | None:
    from msareid.training.checkpoint import load_checkpoint

    try:
        state = load_checkpoint(path)
    except UserError:
        return None
    return {"epoch": int(state["epoch"]), "config": state["config"]}


def checkpoints(folder: Path) -> list[Path]:
    """The run's checkpoint files, newest first: ``last.pt``, then ``epoch_NNN.pt`` by epoch."""
    epochs = sorted(folder.glob("epoch_*.pt"), key=lambda p: p.name, reverse=True)
    return [p for p in [folder / "last.pt", *epochs] if p.is_file()]


def stored_config(run: PlannedRun, restore: bool = False) -> dict[str, Any] | None:
    """The config a run folder was trained with: the one inside its newest readable checkpoint,
    else its ``config.toml``, else the ``planned.toml`` it was started from; None for a folder
    holding none of them. With ``restore``, a missing or empty ``config.toml`` is written again
    from the checkpoint."""
    for path in checkpoints(run.folder):
        state = checkpoint_state(path)
        if state is not None:
            config = config_to_dict(config_from_dict(state["config"], f"{path} (config)"))
            toml = run.folder / "config.toml"
            if restore and (not toml.is_file() or not toml.read_text(errors="replace").strip()):
                write_text(toml, dump_toml(config_from_dict(config)))
            return config
    for name in ("config.toml", "planned.toml"):
        path = run.folder / name
        if path.is_file() and path.read_text(errors="replace").strip():
            return config_to_dict(load_config(path))
    return None


def check_same_config(run: PlannedRun, restore: bool) -> None:
    """A run folder from an earlier ablation must have been made from the same config, except for a
    larger ``train.epochs`` (the runs are then trained further, as ``train --resume --set``), the
    settings that cannot change what it learns (``config.NOT_IDENTITY``) and the evaluation settings
    (the run is then evaluated again)."""
    old = stored_config(run, restore)
    if old is None:
        return
    diff = identity_keys_differing(old, config_to_dict(run.config))
    if diff == ["train.epochs"] and run.config.train.epochs > old["train"]["epochs"]:
        return
    if diff:
        raise UserError(f"{run.folder} was trained with another config (differs in {', '.join(diff[:6])}); "
                        "use a new --out, or the same --config and --set as before (train.epochs may grow)")


def run_state(run: PlannedRun) -> str:
    """``done``; ``evaluate`` (trained, not evaluated); ``resume`` (stopped, or to train longer);
    ``recover`` (``last.pt`` missing or unreadable, an earlier ``epoch_NNN.pt`` readable); ``aside``
    (checkpoints, none readable: the folder is moved aside, never deleted); or ``new``."""
    stored = stored_config(run)
    longer = stored is not None and stored["train"]["epochs"] < run.config.train.epochs
    result = read_eval(run.folder)  # (one without "epoch" or "eval" was written before evaluations said them)
    planned_eval = config_to_dict(run.config)["eval"]
    if not longer and result is not None and int(result.get("epoch", run.config.train.epochs)) >= \
            run.config.train.epochs and result.get("eval", planned_eval) == planned_eval:
        return "done"
    files = checkpoints(run.folder)
    readable = next(((p, s) for p in files if (s := checkpoint_state(p)) is not None), None)
    if readable is None:  # a folder with any checkpoint-like file is kept (moved aside), never deleted
        return "aside" if any(run.folder.glob("*.pt")) else "new"
    path, state = readable
    if path.name != "last.pt":
        return "recover"
    return "evaluate" if int(state["epoch"]) >= run.config.train.epochs else "resume"


def recover(run: PlannedRun) -> str:
    """Make the newest readable ``epoch_NNN.pt`` the run's ``last.pt`` (saying so); returns the
    state it leaves the run in. The unreadable ``last.pt`` is kept beside it."""
    path, state = next((p, s) for p in checkpoints(run.folder) if (s := checkpoint_state(p)) is not None)
    last = run.folder / "last.pt"
    if last.exists():
        os.replace(last, run.folder / f"last.unreadable-{time.strftime('%Y%m%d-%H%M%S')}.pt")
    with atomic_path(last) as tmp:
        shutil.copyfile(path, tmp)
    warn(f"{last} is missing or unreadable; continuing {run.folder} from {path.name} (epoch {state['epoch']})")
    return "evaluate" if int(state["epoch"]) >= run.config.train.epochs else "resume"


def move_aside(run: PlannedRun) -> None:
    """A folder whose checkpoints are all unreadable is moved aside, not deleted, before a new run."""
    aside = run.folder.with_name(f"{run.folder.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(run.folder, aside)
    warn(f"no readable checkpoint in {run.folder}; moved it to {aside} and training the run anew")


def read_eval(folder: Path) -> dict[str, Any] | None:
    """The run's ``eval.json``; None when it is missing, unreadable, of another shape or holds a
    figure that is no fraction (NaN, 5.0 for 500 %): then the run is evaluated again, and no such
    figure reaches a table."""
    try:
        data = json.loads((folder / "eval.json").read_text())
    except (OSError, ValueError):
        return None
    numbers = isinstance(data, dict) and all(isinstance(data.get(k), (int, float)) and not isinstance(data[k], bool)
                                             and 0.0 <= data[k] <= 1.0 for k in METRICS)
    return data if numbers else None
