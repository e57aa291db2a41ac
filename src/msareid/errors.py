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
