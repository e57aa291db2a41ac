"""Handler of ``msareid report``: an HTML page with the results and pictures of trained runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``msareid report``."""
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (last.pt, metrics.jsonl)")
    p.add_argument("--out", help="HTML file (default: RUN_DIR/report.html for a single run)")
    p.add_argument("--root", help="dataset root (default: data.root of each run's config)")


def cmd_report(args: argparse.Namespace) -> int:
    from msareid.errors import UserError
    from msareid.report.build import build_report

    if not args.out and len(args.runs) > 1:
        raise UserError("several runs need --out REPORT.html")
    out = Path(args.out) if args.out else Path(args.runs[0]) / "report.html"
    path = build_report(args.runs, out, args.root)
    print(f"wrote {path}")
    return 0
