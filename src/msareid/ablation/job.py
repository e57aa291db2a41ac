"""One ablation run in one child process: train (or resume) then evaluate, through the library
(:func:`msareid.engine.train`, :func:`msareid.inference.evaluate_checkpoint`), in one interpreter.

Usage (by the runner): ``python -m msareid.ablation.job '<json list of steps>'``, each step one of
``{"train": PLANNED_TOML, "out": RUN_DIR}``, ``{"resume": RUN_DIR, "values": {section: {key: value}}}``
(the planned values the resumed run takes: more epochs, workers, device, evaluation settings ...)
and ``{"evaluate": CHECKPOINT, "out": EVAL_JSON, "eval": {key: value}}`` (the planned protocol).
Errors a user can cause end the process with one line (``msareid ablate run: error: ...``, what
the runner reports) and exit code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from msareid.errors import user_message

CPU_OPTION = "--set train.device=cpu"


def _train(step: dict[str, Any]) -> None:
    from msareid.engine import train
    from msareid.recipes import load_config

    summary = train(load_config(step["train"]), step["out"], progress=False)
    print(f"trained {summary.epochs} epochs x {summary.steps_per_epoch} steps in {summary.seconds:.1f}s", flush=True)


def _resume(step: dict[str, Any]) -> None:
    from msareid.config import config_from_dict
    from msareid.engine import train
    from msareid.recipes import with_overrides
    from msareid.training.checkpoint import load_checkpoint

    last = Path(step["resume"]) / "last.pt"
    saved = config_from_dict(load_checkpoint(last)["config"], str(last))
    config = with_overrides(saved, values=step["values"], source=f"{last} with the planned settings")
    summary = train(config, step["resume"], resume=True, progress=False)
    print(f"trained to epoch {summary.epochs} in {summary.seconds:.1f}s", flush=True)


def _evaluate(step: dict[str, Any]) -> None:
    from msareid import threads
    from msareid.allocator import reuse_freed_memory
    from msareid.config import EvalConfig
    from msareid.fileio import save_json
    from msareid.inference import evaluate_checkpoint
    from msareid.locks import exclusive
    from msareid.training.distributed import resolve_device

    threads.configure()
    reuse_freed_memory()
    with exclusive(Path(step["out"]).parent, "msareid ablate (evaluating the run)"):  # one writer a run folder
        planned = EvalConfig(**step["eval"]) if "eval" in step else None
        result, text = evaluate_checkpoint(step["evaluate"], lambda protocol: planned or protocol,
                                           device=resolve_device("auto"))
        save_json(result, step["out"])
    print(text, flush=True)


STEPS = {"train": _train, "resume": _resume, "evaluate": _evaluate}


def run(steps: list[dict[str, Any]]) -> int:
    """Run each step in turn; stop at the first that fails and return its exit code."""
    for step in steps:
        kind = next(k for k in STEPS if k in step)
        print(f"# {kind} {step[kind]}", flush=True)
        try:
            STEPS[kind](step)
        except Exception as exc:
            message = user_message(exc, CPU_OPTION)
            if message is None:
                raise
            print(f"msareid ablate run: error: {message}", file=sys.stderr, flush=True)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(run(json.loads(sys.argv[1])))
