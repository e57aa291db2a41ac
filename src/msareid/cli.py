"""The ``msareid`` command line: one subcommand per task, errors as one line and exit code 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from msareid import __version__
from msareid.argtypes import non_negative_int, positive_int
from msareid.commands import ablate as ablate_cmd
from msareid.commands import data as data_cmd
from msareid.commands import deploy as deploy_cmd
from msareid.commands import evaluate as evaluate_cmd
from msareid.commands import profile as profile_cmd
from msareid.commands import report as report_cmd
from msareid.commands import train as train_cmd
from msareid.data.datasets import DATASETS, dataset_names, synthetic_names
from msareid.errors import user_message


def class_counts() -> str:
    """``395 for sysu, 206 for regdb, ...``: the training identities of each real dataset."""
    return ", ".join(f"{cls.num_classes} for {name}" for name, cls in DATASETS.items() if cls.num_classes)


def _add_dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", choices=dataset_names(), help="dataset layout")
    p.add_argument("--root", required=True, help="dataset root folder (the CSV file for manifest)")
    p.add_argument("--trial", type=int, default=1, help="RegDB trial 1..10 (default 1)")


def _add_data_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``synth``, ``check-data`` and ``preview``."""
    p = sub.add_parser("synth", parents=[common], help="write a synthetic dataset in the real layout")
    p.add_argument("dataset", choices=synthetic_names())
    p.add_argument("--out", required=True, help="new folder to write")
    p.add_argument("--ids", type=positive_int, default=40, help="number of identities (default 40)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--workers", type=positive_int, default=1, help="processes that render (default 1)")
    hooks = {DATASETS[name].add_synth_arguments.__func__: DATASETS[name] for name in synthetic_names()}
    for hook, cls in hooks.items():  # each reader's own options once (a subclass may share its parent's)
        hook(cls, p)
    p.set_defaults(func=data_cmd.cmd_synth)

    p = sub.add_parser("check-data", parents=[common], help="validate a dataset root and summarise it")
    _add_dataset_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--verify-images", action="store_true", help="also decode every image")
    p.set_defaults(func=data_cmd.cmd_check_data)

    p = sub.add_parser("preview", parents=[common], help="save a picture of training samples")
    _add_dataset_args(p)
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--ids", type=int, default=6, help="identities to show")
    p.add_argument("--per-modality", type=int, default=4, help="images per modality and identity")
    p.set_defaults(func=data_cmd.cmd_preview)


def _add_config_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``profile``, ``config`` and ``cache``: what a config file describes."""
    p = sub.add_parser("profile", parents=[common], help="parameters and MACs beside the paper's figures")
    p.add_argument("--config", help="TOML file (default: built-in defaults)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--num-classes", type=positive_int,
                   help=f"classifier size (default: the dataset's, {class_counts()})")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=profile_cmd.cmd_profile)

    p = sub.add_parser("config", parents=[common], help="print the resolved configuration")
    p.add_argument("--config", help="TOML file (default: built-in defaults)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.set_defaults(func=data_cmd.cmd_config)

    p = sub.add_parser("cache", parents=[common], help="decode the training images into the cache")
    p.add_argument("--config", help="TOML file (default: built-in defaults)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=data_cmd.cmd_cache)


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one line and exit code 2, like every other error (its
    default prints the whole usage first); ``--help`` still shows the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser = _Parser(prog="msareid", parents=[common],
                                     description="RGB-infrared person re-identification with MSA.")
    parser.add_argument("--version", action="version", version=f"msareid {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    _add_data_commands(sub, common)
    p = sub.add_parser("train", parents=[common], help="train MSA, the baseline or an ablation")
    train_cmd.add_arguments(p)
    p.set_defaults(func=train_cmd.cmd_train)

    p = sub.add_parser("ablate", parents=[common],
                       help="an ablation: rows (a row set of the paper's tables and figures, or your own) x seeds, "
                            "with seed statistics")
    ablate_cmd.add_arguments(p)
    p.set_defaults(func=ablate_cmd.cmd_ablate)

    p = sub.add_parser("evaluate", parents=[common],
                       help="evaluate a trained model or saved features with a standard protocol")
    evaluate_cmd.add_arguments(p)
    p.set_defaults(func=evaluate_cmd.cmd_evaluate)

    p = sub.add_parser("extract", parents=[common], help="features of a folder of images or a manifest")
    deploy_cmd.add_extract_arguments(p)
    p.set_defaults(func=deploy_cmd.cmd_extract)

    p = sub.add_parser("search", parents=[common], help="search a gallery of extracted features")
    deploy_cmd.add_search_arguments(p)
    p.set_defaults(func=deploy_cmd.cmd_search)

    p = sub.add_parser("export", parents=[common], help="export the embedding net (ONNX)")
    deploy_cmd.add_export_arguments(p)
    p.set_defaults(func=deploy_cmd.cmd_export)

    p = sub.add_parser("report", parents=[common], help="an HTML report of trained runs")
    report_cmd.add_arguments(p)
    p.set_defaults(func=report_cmd.cmd_report)

    _add_config_commands(sub, common)
    return parser


def _cpu_option(args: argparse.Namespace) -> str:
    """How to run the command in use on the CPU, with an option it accepts."""
    if hasattr(args, "device"):
        return "--device cpu"
    if hasattr(args, "set") and args.command != "evaluate":
        return "--set train.device=cpu"
    return "CUDA_VISIBLE_DEVICES= (no GPU)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for bad input).

    Every error a user can cause (bad input files, keys and values, file-system failures such as a
    full disk or a read-only folder, files in another text encoding) becomes one line on stderr and
    exit code 2; ``--debug`` (before or after the subcommand) shows the traceback instead.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False)) or "--debug" in argv
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        print(f"msareid {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        message = user_message(exc, _cpu_option(args))
        if debug or message is None:
            raise
        print(f"msareid {args.command}: error: {message}", file=sys.stderr)
        return 2
