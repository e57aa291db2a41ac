"""Handler of ``msareid report``: an HTML page with the results and pictures of trained runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``msareid report``."""
    p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="run folders (last.pt, metrics.jsonl), or one ablation folder (ablation.json)")
    p.add_argument("--out", help="HTML file (default: RUN_DIR/report.html for a single run)")
    p.add_argument("--root", help="dataset root (default: data.root of each run's config)")


def cmd_report(args: argparse.Namespace) -> int:
    from msareid import threads
    from msareid.allocator import reuse_freed_memory
    from msareid.errors import UserError
    from msareid.report.ablation import build_ablation_report, is_ablation
    from msareid.report.build import build_report

    if not args.out and len(args.runs) > 1:
        raise UserError("several runs need --out REPORT.html")
    out = Path(args.out) if args.out else Path(args.runs[0]) / "report.html"
    threads.configure()
    reuse_freed_memory()  # the network runs batch after batch: no page faults for each
    if len(args.runs) == 1 and is_ablation(args.runs[0]):
        path = build_ablation_report(args.runs[0], out, args.root)
    elif any(is_ablation(r) for r in args.runs):
        raise UserError("an ablation folder is reported on its own: msareid report ABLATION_DIR")
    else:
        path = build_report(args.runs, out, args.root)
    print(f"wrote {path}")
    return 0
