"""The exception types that the command line turns into a one-line message and exit code 2, and
:func:`user_message`, which writes that line for every error a user can cause."""

from __future__ import annotations

import sys


def warn(message: str) -> None:
    """A one-line warning on stderr for input that works but is likely a mistake; the command goes on."""
    print(f"warning: {message}", file=sys.stderr)


class UserError(Exception):
    """Bad input from the user: a path, a key or a file that is not what was expected.

    The message names the file or key and says what was expected; the CLI prints it on one line
    and exits with code 2, without a traceback unless ``--debug`` is given.
    """


class DeviceError(UserError):
    """A device that cannot be used. ``reason`` says why; ``hint`` how to run on the CPU instead,
    for a caller of the Python API (the command line replaces it with the option of the command in
    use: ``--device cpu`` or ``--set train.device=cpu``)."""

    def __init__(self, reason: str, hint: str = 'pass device="cpu"') -> None:
        self.reason, self.hint = reason, hint
        super().__init__(f"{reason}; {hint}")


def _os_error(exc: OSError) -> str:
    """One line for a file-system error: what failed, on which path, and what to do."""
    where = f" {exc.filename}" if exc.filename else ""
    reason = exc.strerror or str(exc) or exc.__class__.__name__
    hint = {28: "free some space or write elsewhere", 30: "write to a folder you can write to",
            13: "check the permissions or choose another path", 21: "give a file path, not a folder",
            20: "a part of the path is a file, not a folder"}.get(exc.errno or 0, "check the path")
    return f"cannot use{where}: {reason} ({hint})"


def _device_failure(exc: BaseException, cpu_option: str) -> str | None:
    """One line for an error of the GPU itself (out of memory, a CUDA error), or None for any other."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    kinds = tuple(k for k in (getattr(torch, "OutOfMemoryError", None), getattr(torch, "AcceleratorError", None))
                  if isinstance(k, type))
    if not kinds or not isinstance(exc, kinds):
        return None
    first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:160]
    what = "the GPU ran out of memory" if "out of memory" in str(exc).lower() else "the GPU failed"
    return f"{what} ({first}); free GPU memory, use smaller batches, or run on the CPU with {cpu_option}"


def user_message(exc: BaseException, cpu_option: str = 'device="cpu"') -> str | None:
    """The one line for an error a user can cause (bad input, a file-system failure, a text file in
    another encoding, a device that fails), naming ``cpu_option`` (how the command in use runs on
    the CPU) where the device is the problem; None for any other error (a bug: show the traceback)."""
    device = _device_failure(exc, cpu_option)
    if device:
        return device
    if isinstance(exc, DeviceError):
        return f"{exc.reason}; run on the CPU with {cpu_option}"
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return (f"a text file is not UTF-8 ({exc.reason} at byte {exc.start}); save it as UTF-8 "
                "(paths and values in configs, manifests and split files)")
    if isinstance(exc, OSError):
        return _os_error(exc)
    return None
