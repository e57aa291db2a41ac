"""Ownership of a folder: an exclusive OS file lock held by the one process that writes it.

The lock is ``fcntl.flock`` on ``FOLDER/.msareid.lock``: the kernel releases it when its process
ends, however it ends (a SIGKILL leaves no stale lock), and it works on local and NFS file systems.
The file also says who holds it, so that a second writer can be told.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from msareid.errors import UserError

LOCK_NAME = ".msareid.lock"


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Hold ``folder``'s lock while the block runs; a folder another process holds is refused with
    one line naming the folder and its holder (``what``, process id, host and start time)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"cannot lock {folder} ({exc.strerror or exc}); is it writable?") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            raise UserError(f"{folder} is being written by {holder}; wait for it to end, or use another "
                            "folder") from None
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} (pid {os.getpid()} on {socket.gethostname()}, since {stamp})\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
