"""Checkpoints: written atomically, loadable with ``torch.load(weights_only=True)``.

A checkpoint holds the model and optimiser states, the position in training (epoch and the next
batch of the sampler), every random-number generator state, the resolved config (so a checkpoint
alone rebuilds its model) and the versions that wrote it.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from msareid import __version__
from msareid.errors import UserError
from msareid.fileio import atomic_file, load_torch

FORMAT = 1


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch generator states in weights-only-loadable types."""
    py = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np_state[1].numpy().astype(np.uint32), *np_state[2:]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def versions() -> dict[str, str]:
    """The versions that wrote a checkpoint (plain strings: weights-only loadable)."""
    return {"msareid": __version__, "torch": str(torch.__version__), "numpy": str(np.__version__),
            "format": str(FORMAT)}


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, flushed to disk, then renamed over it; a
    full disk is the ``OSError`` of ``path``'s folder (not the serializer's RuntimeError), and
    ``path`` keeps its previous content."""
    with atomic_file(path) as handle:
        torch.save(obj, handle)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a truncated, foreign or unsafe file is a
    one-line UserError (:func:`msareid.fileio.load_torch`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    ckpt = load_torch(path, "checkpoint", "a msareid checkpoint")
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise UserError(f"checkpoint {path} is not a msareid checkpoint (no model or config inside)")
    return ckpt


def prune(folder: Path, keep_last: int, keep_every: int, only: set[Path] | None = None) -> None:
    """Delete epoch checkpoints except the last ``keep_last`` and every ``keep_every``-th epoch;
    with ``only``, delete none but those (the files this process wrote: a resumed run never
    removes a checkpoint of an earlier process)."""
    found = sorted((int(m.group(1)), p) for p in folder.glob("epoch_*.pt")
                   if (m := re.fullmatch(r"epoch_(\d+)\.pt", p.name)))
    recent = {e for e, _ in found[-keep_last:]} if keep_last > 0 else set()
    for epoch, path in found:
        if epoch not in recent and not (keep_every and epoch % keep_every == 0) and (only is None or path in only):
            path.unlink()
