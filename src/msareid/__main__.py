"""`python -m msareid` runs the command-line tool."""

from msareid.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
