"""One ablation run in one child process: ``msareid train`` then ``msareid evaluate``, the very
commands a user would type, run in one interpreter (torch is imported once).

Usage (by the runner): ``python -m msareid.ablation.job '<json list of argument lists>'``.
"""

from __future__ import annotations

import json
import sys

from msareid.cli import main


def run(commands: list[list[str]]) -> int:
    """Run each command line in turn; stop at the first that fails and return its exit code."""
    for args in commands:
        print(f"$ msareid {' '.join(args)}", flush=True)
        code = main(args)
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(run(json.loads(sys.argv[1])))
