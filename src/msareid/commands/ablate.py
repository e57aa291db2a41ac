"""Handler of ``msareid ablate``: rows x seeds from one base config, with seed statistics."""

from __future__ import annotations

import argparse

from msareid.ablation.rows import ROW_SETS, describe_sets
from msareid.argtypes import non_negative_int, positive_float, positive_int
from msareid.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``msareid ablate``."""
    p.add_argument("--config", help="base TOML config (e.g. configs/tiny.toml)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a key of the base config (e.g. train.epochs=20)")
    p.add_argument("--rows", action="append", default=[], metavar="|".join([*ROW_SETS, "FILE.toml"]),
                   help=f"a set of rows: {describe_sets()}; or a TOML file with one table a row")
    p.add_argument("--row", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                   help="a row of your own, e.g. 'MSA-unit:model.isa_space=unit' (repeatable)")
    p.add_argument("--only", help="comma-separated names of the --rows rows to keep, e.g. B,MSA (--row rows are "
                                  "always kept)")
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
    s = p.add_argument_group("SLURM (--launcher slurm; pip install 'msareid[slurm]')")
    s.add_argument("--launcher", choices=("local", "slurm"), default="local",
                   help="local: child processes on this machine (default); slurm: one job-array task a run")
    s.add_argument("--status", action="store_true", help="submit nothing: print where each run stands")
    s.add_argument("--wait", action="store_true",
                   help="after submitting, wait until no run is queued, then write the tables")
    s.add_argument("--poll", type=positive_int, default=30, metavar="SECONDS",
                   help="--wait: seconds between looks at the queue (default 30)")
    s.add_argument("--slurm-partition", help="sbatch --partition")
    s.add_argument("--slurm-gpus", type=non_negative_int, default=0, metavar="N",
                   help="GPUs a run (sbatch --gpus-per-node)")
    s.add_argument("--slurm-cpus", type=positive_int, default=4, metavar="N",
                   help="CPUs a run, also its torch threads (sbatch --cpus-per-task; default 4)")
    s.add_argument("--slurm-mem-gb", type=positive_float, metavar="GB", help="memory a run (sbatch --mem)")
    s.add_argument("--slurm-time", type=positive_int, default=24 * 60, metavar="MINUTES",
                   help="time limit a run; at the limit it is requeued and resumes (default 1440)")
    s.add_argument("--slurm-parallel", type=positive_int, default=64, metavar="N",
                   help="tasks of the array running at once (default 64)")
    s.add_argument("--slurm-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="any other sbatch option, e.g. qos=high or account=lab (repeatable)")


def _seeds(text: str) -> list[int]:
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


def _slurm_options(args: argparse.Namespace) -> object:
    from msareid.ablation.slurm import SlurmOptions

    extra = {}
    for item in args.slurm_arg:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or key.strip().startswith("-"):
            raise UserError(f"--slurm-arg {item!r}: expected KEY=VALUE without dashes, e.g. qos=high")
        extra[key.strip()] = value.strip()
    if args.slurm_gpus < 0:
        raise UserError(f"--slurm-gpus must be 0 or more, got {args.slurm_gpus}")
    return SlurmOptions(args.slurm_partition, args.slurm_gpus, args.slurm_cpus, args.slurm_mem_gb, args.slurm_time,
                        args.slurm_parallel, extra)


def _on_slurm(args: argparse.Namespace, base: object, rows: list, meta: dict) -> int:
    """Submit the runs not done nor queued as a job array; with --wait, then write the tables."""
    from pathlib import Path

    from msareid.ablation.plan import prepare
    from msareid.ablation.runner import run_ablation
    from msareid.ablation.slurm import slurm_ablation

    out = Path(args.out)
    options = _slurm_options(args)
    runs, baseline = prepare(base, rows, _seeds(args.seeds), out, args.epochs, args.baseline, args.mixed_protocols)

    def echo(line: str) -> None:
        print(line, flush=True)

    found = slurm_ablation(runs, out, options, echo, status_only=args.status,
                           wait_poll_s=float(args.poll) if args.wait else None)
    if not args.wait:
        if not args.status:
            echo("follow it with the same command and --status (or --wait); the tables with --collect")
        return 0
    if any(s.state == "done" for s in found):
        run_ablation(base, rows, _seeds(args.seeds), out, 1, baseline, meta, echo=echo, collect_only=True,
                     epochs=args.epochs, mixed_protocols=args.mixed_protocols)
    failed = [s for s in found if s.state != "done"]
    if failed:
        first = failed[0]
        raise UserError(f"{len(failed)} run(s) did not finish; first: {first.run.row.name} seed {first.run.seed} "
                        f"({first.state}{': ' + first.reason if first.reason else ''})"
                        f"{f'; log {first.log}' if first.log else ''}; submit again to retry them")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from msareid.ablation.plan import describe, prepare
    from msareid.ablation.rows import resolve_rows
    from msareid.ablation.runner import check_configs, run_ablation, visible_gpus
    from msareid.recipes import load_config

    base = load_config(args.config, args.set)
    only = None if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    rows = resolve_rows(args.rows, args.row, only)
    if args.dry_run:  # every check the real run makes before it trains, then the plan
        runs, _ = prepare(base, rows, _seeds(args.seeds), Path(args.out), args.epochs, args.baseline,
                          args.mixed_protocols)
        check_configs(runs, restore=False)
        if args.launcher != "slurm" and not args.collect:
            visible_gpus(args.gpus)
        _print_plan(describe(base, runs), args.json)
        return 0
    meta = {"config": args.config or "defaults", "overrides": list(args.set), "epochs": args.epochs}
    if args.launcher == "slurm" and not args.collect:
        return _on_slurm(args, base, rows, meta)
    if args.status or args.wait:
        raise UserError("--status and --wait go with --launcher slurm")
    gpus = [] if args.collect else visible_gpus(args.gpus)
    run_ablation(base, rows, _seeds(args.seeds), args.out, args.jobs, args.baseline, meta,
                 echo=lambda line: print(line, flush=True), collect_only=args.collect, epochs=args.epochs,
                 keep_going=args.keep_going, mixed_protocols=args.mixed_protocols, gpus=gpus)
    return 0
