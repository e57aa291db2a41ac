"""Atomic file writes: a temporary file beside the target, then a rename over it.

A crash or a full disk leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed.

    ``suffix`` keeps an extension that a writer insists on (``np.savez`` adds ``.npz``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files of :func:`atomic_path` in ``folder`` whose writing process is gone
    (killed mid-write); those of live processes stay. Returns the paths removed."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp*"):
        parts = tmp.name.rsplit(".tmp", 1)[0].rsplit(".", 1)
        if len(parts) != 2 or not parts[1].isdigit() or _alive(int(parts[1])):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reserve(path: str | os.PathLike[str]) -> None:
    """Allocate every block of the (sparse) file at ``path`` now, so that writing it through a memory
    map cannot meet a full disk later (which kills the process with SIGBUS): a full disk is an
    ``OSError`` (ENOSPC) here instead. A no-op where the platform lacks ``posix_fallocate``."""
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "r+b") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # file systems without it
                return
            raise OSError(exc.errno, f"{exc.strerror} (reserving {os.fstat(handle.fileno()).st_size} bytes)",
                          str(path)) from None


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def save_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` as JSON atomically (temporary file, then rename)."""
    import json

    return write_text(path, json.dumps(obj, indent=1))
