"""Handler of ``msareid evaluate``: a trained model, precomputed features (npz) or the authors'
official SYSU-MM01 files.

The protocol options are the fields of :class:`msareid.config.EvalConfig`, declared there once:
each field is an option here (``--batch-size`` for ``batch_size``) and ``--set eval.key=value``
sets any of them. With ``--checkpoint`` the run's own ``[eval]`` is the starting point, so
``evaluate``, ``report`` and ``ablate`` score a checkpoint under one protocol.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing

from msareid.config import EvalConfig
from msareid.data.datasets import dataset_names
from msareid.errors import UserError
from msareid.recipes import choices_of


def _protocol_fields() -> list[dataclasses.Field]:
    """The fields of ``EvalConfig`` that describe a protocol (not those only training reads)."""
    return [f for f in dataclasses.fields(EvalConfig) if not f.metadata.get("training")]


def _eval_options(p: argparse.ArgumentParser) -> None:
    """One option for each protocol field of ``EvalConfig``, defaulting to "not given"."""
    types = typing.get_type_hints(EvalConfig)
    for f in _protocol_fields():
        flag = "--" + f.name.replace("_", "-")
        kind = types[f.name]
        default = f"default {f.default}" if f.default != "" else "default: none"
        help_text = f"{f.metadata['help']} ({default}; eval.{f.name})"
        if kind is bool:
            p.add_argument(flag, dest=f.name, action="store_true", default=None, help=help_text)
        else:
            p.add_argument(flag, dest=f.name, type=kind, default=None, choices=choices_of(f"eval.{f.name}"),
                           help=help_text)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``msareid evaluate``."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--features", metavar="FILE.npz",
                        help="query_feat, gallery_feat, query_pid, gallery_pid, query_cam, gallery_cam")
    source.add_argument("--official-sysu", metavar="DIR", help="folder of NAME_cam<c>.mat feature files")
    source.add_argument("--checkpoint", metavar="CKPT", help="a trained model (e.g. RUN_DIR/last.pt)")
    p.add_argument("--dataset", choices=dataset_names(aliases=True),
                   help="--checkpoint: dataset (default: the run's data.name)")
    p.add_argument("--root", help="--checkpoint: dataset root, the CSV for manifest (default: the run's data.root)")
    p.add_argument("--protocol", choices=dataset_names(),
                   help="--features: score with this dataset's ranking rules (CMC form, excluded images)")
    p.add_argument("--name", help="--official-sysu: the NAME of NAME_cam<c>.mat")
    p.add_argument("--test-ids", metavar="test_id.mat", help="--official-sysu: the authors' test ids")
    p.add_argument("--set", action="append", default=[], metavar="eval.KEY=VALUE",
                   help="set a protocol key (any field of [eval]); repeatable")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--out", metavar="FILE.json", help="also write the JSON result to this file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _eval_options(p.add_argument_group("protocol (the fields of [eval])"))


def protocol_of(args: argparse.Namespace, base: EvalConfig) -> EvalConfig:
    """``base`` with ``--set eval.*`` and the protocol options given on the command line."""
    from msareid.config import Config
    from msareid.recipes import with_overrides

    bad = [t for t in args.set if not t.strip().startswith("eval.")]
    if bad:
        raise UserError(f"--set {bad[0]!r}: evaluate sets protocol keys only, e.g. --set eval.trials=3")
    given = {f.name: getattr(args, f.name) for f in _protocol_fields() if getattr(args, f.name) is not None}
    return with_overrides(Config(eval=base), args.set, {"eval": given}, source="evaluate options").eval


def cmd_evaluate(args: argparse.Namespace) -> int:
    from msareid.fileio import save_json

    if args.checkpoint:
        from msareid import threads
        from msareid.allocator import reuse_freed_memory
        from msareid.inference import evaluate_checkpoint
        from msareid.training.distributed import resolve_device

        threads.configure()
        reuse_freed_memory()  # extraction runs batch after batch: no page faults for each
        out, text = evaluate_checkpoint(args.checkpoint, lambda run_eval: protocol_of(args, run_eval),
                                        args.dataset, args.root, resolve_device(args.device), progress=not args.json)
    elif args.features:
        from msareid.eval.feature_files import evaluate_features_file

        if not args.protocol:
            raise UserError(f"--features needs --protocol, one of {', '.join(dataset_names())}")
        result = evaluate_features_file(args.features, args.protocol, protocol_of(args, EvalConfig()))
        out, text = result.as_dict(per_run=False), result.table()
    else:
        from msareid.eval.feature_files import evaluate_official_files

        protocol = protocol_of(args, EvalConfig())
        missing = [flag for flag, v in (("--name", args.name), ("--perm", protocol.perm), ("--test-ids", args.test_ids))
                   if not v]
        if missing:
            raise UserError(f"--official-sysu needs {', '.join(missing)}")
        result = evaluate_official_files(args.official_sysu, args.name, args.test_ids, protocol)
        out, text = result.as_dict(per_run=True), result.table()
    if args.out:
        save_json(out, args.out)
    print(json.dumps(out) if args.json else text)
    return 0
