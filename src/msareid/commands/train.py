"""Handler of ``msareid train``: a new run, or ``--resume`` of a stopped one."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``msareid train``."""
    p.add_argument("--config", help="TOML file (e.g. configs/sysu.toml, configs/tiny.toml)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config key")
    p.add_argument("--out", help="new run folder: last.pt, epoch_NNN.pt, metrics.jsonl, config.toml")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_train(args: argparse.Namespace) -> int:
    from msareid.config import config_from_dict
    from msareid.engine import train
    from msareid.errors import UserError
    from msareid.recipes import load_config, with_overrides
    from msareid.training.checkpoint import load_checkpoint

    if bool(args.out) == bool(args.resume):
        raise UserError("give either --out RUN_DIR (a new run) or --resume RUN_DIR (continue a run)")
    if args.resume:
        out = Path(args.resume)
        saved = config_from_dict(load_checkpoint(out / "last.pt")["config"], str(out / "last.pt"))
        # --set e.g. more epochs for a run that already finished
        config = with_overrides(saved, args.set, source=f"{out / 'last.pt'} with --set")
    else:
        out = Path(args.out)
        if (out / "last.pt").exists():
            raise UserError(f"{out} already holds a run (last.pt); continue it with --resume {out} "
                            "or choose a new --out")
        config = load_config(args.config, args.set)
    summary = train(config, out, resume=bool(args.resume), progress=not args.no_progress)
    if summary.rank == 0:
        losses = ", ".join(f"{k} {v:.4f}" for k, v in summary.last_losses.items())
        print(f"trained {summary.epochs} epochs x {summary.steps_per_epoch} steps in {summary.seconds:.1f}s; "
              f"last epoch: {losses or 'no step'}; checkpoint {out / 'last.pt'}")
    return 0
