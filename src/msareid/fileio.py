"""Atomic file writes: a temporary file beside the target, then a rename over it.

A crash or a full disk leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

FULL_BELOW = 16 * 2**20  # bytes free under which a failed write is taken for a full disk


def storage_error(errno_: int, folder: str | os.PathLike[str]) -> OSError:
    """The ``OSError`` of a failed write into ``folder``, as the command line reports it (one line
    naming the folder and what to do)."""
    return OSError(errno_, os.strerror(errno_), str(folder))


def _disk_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < FULL_BELOW
    except OSError:
        return False


@contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed.

    ``suffix`` keeps an extension that a writer insists on (``np.savez`` adds ``.npz``). A writer
    that fails on a full disk with an exception of its own (not the ``OSError`` itself) is reported
    as the ``OSError`` ENOSPC of ``path``'s folder, the original chained.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except Exception as exc:
        if not isinstance(exc, OSError) and _disk_full(path.parent):
            raise storage_error(errno.ENOSPC, path.parent) from exc
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


class _RecordingFile:
    """A binary file that remembers the first ``OSError`` its writes raised, so that a library that
    wraps it in an exception of its own (torch's serializer raises a RuntimeError) can be answered
    with the storage error itself."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._handle.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


@contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A binary file to write ``path`` through: a temporary beside it, flushed to disk and renamed
    over ``path`` on success, removed on error. A write that fails for lack of space (or any other
    storage error) raises that ``OSError``, for the folder of ``path``, whatever exception the
    writing library turned it into; nothing of the old ``path`` is lost."""
    path = Path(path)
    with atomic_path(path) as tmp:
        handle = open(tmp, "wb")
        recording = _RecordingFile(handle)
        try:
            yield recording  # type: ignore[misc]
            handle.flush()
            os.fsync(handle.fileno())
        except Exception as exc:
            if recording.error is not None and exc is not recording.error:
                raise storage_error(recording.error.errno or errno.EIO, path.parent) from exc
            raise
        finally:
            handle.close()


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
    """Write ``text`` to ``path`` atomically, as UTF-8. A file name that is not valid UTF-8 (held in
    ``text`` as surrogate escapes) is written as its backslash escapes (``caf\\xe9.jpg``), never a
    failure; pages show names through :func:`display_path` first."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="backslashreplace")
    return Path(path)


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` as printable text: bytes of the name that are not valid UTF-8 (on POSIX, held as
    surrogate escapes) shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


def file_url(path: str | os.PathLike[str]) -> str:
    """A ``file://`` URL of ``path`` (absolute) that names the very bytes of the name, undecodable
    ones percent-encoded, so that a page links the right file."""
    return Path(os.path.abspath(path)).as_uri()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def load_torch(path: str | os.PathLike[str], what: str, kind: str = "a PyTorch file") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU. A file that holds more than tensors and
    plain containers (code to run when unpickled) is refused in one line naming ``path``, what it
    holds and what to do; a truncated or foreign file likewise. The library's whole message is
    chained (``--debug`` shows it)."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = _ANSI.sub("", str(exc))
        if "Weights only load failed" not in text:
            raise _unreadable(path, what, kind, exc) from exc
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        holds = f"the Python object {found.group(1)}" if found else "Python objects beyond tensors"
        from msareid.errors import UserError

        raise UserError(f"{what} {path} was refused: it holds {holds}, and msareid loads files with "
                        "weights_only=True, which never runs code from a file; load it in a trusted session and "
                        "re-save its tensors (torch.save(model.state_dict(), ...))") from exc
    except Exception as exc:
        raise _unreadable(path, what, kind, exc) from exc


def _unreadable(path: str | os.PathLike[str], what: str, kind: str, exc: Exception) -> Exception:
    from msareid.errors import UserError

    first = (_ANSI.sub("", str(exc)).strip().splitlines() or ["empty file"])[0][:120]
    return UserError(f"{what} {path} is truncated or not {kind} ({exc.__class__.__name__}: {first})")


def save_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` as JSON atomically (temporary file, then rename)."""
    import json

    return write_text(path, json.dumps(obj, indent=1))
