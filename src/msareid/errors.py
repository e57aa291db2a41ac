"""The one exception type that the command line turns into a one-line message and exit code 2."""


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
