"""Handler of ``msareid ablate``: rows x seeds from one base config, with seed statistics."""

from __future__ import annotations

import argparse

from msareid.argtypes import positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``msareid ablate``."""
    p.add_argument("--config", help="base TOML config (e.g. configs/tiny.toml)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a key of the base config (e.g. train.epochs=20)")
    p.add_argument("--rows", action="append", default=[], metavar="table3|table4|table5|FILE.toml",
                   help="a set of rows: the paper's Table 3 (AGW, MSA(AGW)), 4 or 5, or a TOML file with one "
                        "table a row")
    p.add_argument("--row", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                   help="a row of your own, e.g. 'MSA-unit:model.isa_space=unit' (repeatable)")
    p.add_argument("--only", help="comma-separated row names to keep, e.g. B,MSA")
    p.add_argument("--seeds", required=True, help="comma-separated seeds, the same for every row, e.g. 0,1,2")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="runs at once; the cores are split among them (default 1)")
    p.add_argument("--gpus", metavar="0,1,...",
                   help="GPUs the local runs share, each run seeing one (default: every visible GPU; none: CPU)")
    p.add_argument("--baseline", help="row the paired differences are taken to (default: B if present, else the first)")
    p.add_argument("--out", required=True, help="folder: runs/<row>/seed<S>/, ablation.json, ablation.md")
    p.add_argument("--collect", action="store_true",
                   help="train nothing: write the tables of the runs finished so far")
    p.add_argument("--epochs", type=positive_int,
                   help="resize every row alike: each row's schedule (epochs, warm-up, milestones) scaled to N")
    p.add_argument("--dry-run", action="store_true",
                   help="train nothing: print each planned run (row, seed, run_dir, settings differing from the base)")
    p.add_argument("--json", action="store_true", help="--dry-run: print the plan as one JSON object")
    p.add_argument("--mixed-protocols", action="store_true",
                   help="allow rows scored under different protocols in one table (no differences across them)")
    p.add_argument("--keep-going", action="store_true",
                   help="a failed run does not stop the others (default: stop before the next run starts)")


def _seeds(text: str) -> list[int]:
    from msareid.errors import UserError

    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None
    bad = [s for s in seeds if not 0 <= s < 2**32]
    if bad:
        raise UserError(f"--seeds {text!r}: a seed is 0 to 4294967295, got {bad[0]}")
    return seeds


def _print_plan(planned: list[dict], as_json: bool) -> None:
    import json

    if as_json:
        print(json.dumps({"runs": planned}))
        return
    for p in planned:
        settings = ", ".join(f"{k}={json.dumps(v)}" for k, v in p["settings"].items())
        print(f"{p['row']} seed {p['seed']} -> {p['run_dir']}: {settings}")
    print(f"{len(planned)} runs planned; nothing trained (--dry-run)")


def cmd_ablate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from msareid.ablation.rows import resolve_rows
    from msareid.ablation.runner import describe, plan, run_ablation, visible_gpus
    from msareid.config import load_config

    base = load_config(args.config, args.set)
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    rows = resolve_rows(args.rows, args.row, only)
    if args.dry_run:
        _print_plan(describe(base, plan(base, rows, _seeds(args.seeds), Path(args.out), args.epochs)), args.json)
        return 0
    meta = {"config": args.config or "defaults", "overrides": list(args.set), "epochs": args.epochs}
    gpus = [] if args.collect else visible_gpus(args.gpus)
    run_ablation(base, rows, _seeds(args.seeds), args.out, args.jobs, args.baseline, meta,
                 echo=lambda line: print(line, flush=True), collect_only=args.collect, epochs=args.epochs,
                 keep_going=args.keep_going, mixed_protocols=args.mixed_protocols, gpus=gpus)
    return 0
