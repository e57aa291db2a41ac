"""Planning an ablation: every (row, seed) with the whole config it trains, its folder, what
``--dry-run`` prints, and the checks made before anything is written (seeds, baseline, one protocol)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msareid.ablation.rows import Row, slug
from msareid.config import Config, EvalConfig, config_to_dict
from msareid.errors import UserError
from msareid.recipes import checked


@dataclass(frozen=True)
class PlannedRun:
    """One (row, seed) and the whole config it trains."""

    row: Row
    seed: int
    config: Config
    folder: Path


def _apply(raw: dict[str, dict[str, Any]], settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {section: dict(values) for section, values in raw.items()}
    for dotted, value in settings.items():
        section, key = dotted.split(".", 1)
        out.setdefault(section, {})[key] = value
    return out


def scale_schedule(raw: dict[str, dict[str, Any]], epochs: int) -> dict[str, dict[str, Any]]:
    """``raw`` with its schedule compressed (or stretched) to ``epochs``: warm-up and milestones
    scaled by ``epochs / train.epochs`` and rounded, a warm-up of 1 epoch or more kept at 1 or more,
    milestones kept increasing and inside the run (a milestone at or past the end is dropped)."""
    t = raw["train"]
    factor = epochs / t["epochs"]
    warmup = round(t["warmup_epochs"] * factor)
    milestones: list[int] = []
    for m in t["milestones"]:
        scaled = max(round(m * factor), (milestones[-1] + 1) if milestones else 1)
        if scaled < epochs:
            milestones.append(scaled)
    train = {**t, "epochs": epochs, "milestones": milestones,
             "warmup_epochs": max(warmup, 1) if t["warmup_epochs"] else 0}
    return {**raw, "train": train}


def plan(base: Config, rows: list[Row], seeds: list[int], out: Path, epochs: int | None = None) -> list[PlannedRun]:
    """Every (row, seed) with its config (row settings, then ``train.seed``), seed-major.

    ``epochs`` resizes every row alike: each row's own schedule (from the base config, or the row's
    recipe, e.g. a Table 3 system's 81 epochs) is scaled to that many epochs by :func:`scale_schedule`."""
    if not seeds:
        raise UserError("--seeds needs at least one seed, e.g. --seeds 0,1,2")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {seeds} repeats a seed")
    folders = {slug(r.name) for r in rows}
    if len(folders) != len(rows):
        raise UserError("two row names map to one folder name; make the row names differ in letters or digits")
    raw = config_to_dict(base)
    runs = []
    for seed in seeds:  # seed by seed: a study cut short still has every row for its first seeds
        for row in rows:
            if "train.seed" in row.settings:
                raise UserError(f"row {row.name!r} sets train.seed, which --seeds sets for every row; remove it")
            settings = {**row.settings, "train.seed": seed}
            source = f"row {row.name!r} (--row or --rows)"  # the row the user typed, not a config key alone
            try:
                resolved = _apply(raw, settings)
                if epochs is not None:
                    resolved = scale_schedule(config_to_dict(checked(resolved, source)), epochs)
                config = checked(resolved, source)
            except UserError as exc:
                message = str(exc)
                raise UserError(message if message.startswith(source) else f"{source}: {message}") from None
            runs.append(PlannedRun(row, seed, config, out / "runs" / slug(row.name) / f"seed{seed}"))
    return runs


def describe(base: Config, runs: list[PlannedRun]) -> list[dict[str, Any]]:
    """What ``--dry-run`` prints: each planned run's row, seed, folder and every config key whose
    value differs from the base config (dotted, with its value)."""
    raw = config_to_dict(base)
    out = []
    for run in runs:
        mine = config_to_dict(run.config)
        settings = {key: lookup(mine, key) for key in differences(raw, mine)}
        out.append({"row": run.row.name, "seed": run.seed, "run_dir": str(run.folder), "settings": settings})
    return out


def lookup(raw: dict[str, Any], dotted: str) -> Any:
    section, key = dotted.split(".", 1)
    return raw[section][key]


def differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out += differences(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            out.append(f"{prefix}{k}")
    return out


def prepare(base: Config, rows: list[Row], seeds: list[int], out: Path, epochs: int | None, baseline: str | None,
            mixed_protocols: bool) -> tuple[list[PlannedRun], str]:
    """The planned runs and the baseline row's name; bad rows, seeds, baseline or mixed protocols
    are refused before anything is written."""
    runs = plan(base, rows, seeds, out, epochs)
    names = [r.name for r in rows]
    baseline = baseline or ("B" if "B" in names else names[0])
    if baseline not in names:
        raise UserError(f"--baseline {baseline!r} is not a row; rows: {', '.join(names)}")
    if not mixed_protocols:
        check_one_protocol(runs, baseline)
    return runs, baseline


PROTOCOL_KEYS = ("data.name", "data.root", "data.trial") + tuple(
    f"eval.{f.name}" for f in dataclasses.fields(EvalConfig)
    if not f.metadata.get("training") and f.name != "batch_size")


def check_one_protocol(runs: list[PlannedRun], baseline: str) -> None:
    """Rows scored under different protocols (another dataset, trial, direction, search mode ...)
    do not share one table: refused, naming the first row and key that differ."""

    def protocol(run: PlannedRun) -> dict[str, Any]:
        raw = config_to_dict(run.config)
        return {k: lookup(raw, k) for k in PROTOCOL_KEYS}

    base = next((run for run in runs if run.row.name == baseline), runs[0])
    theirs = protocol(base)
    for run in runs:
        mine = protocol(run)
        diff = [k for k in PROTOCOL_KEYS if mine[k] != theirs[k]]
        if diff:
            key = diff[0]
            raise UserError(
                f"row {run.row.name!r} is scored under another protocol than {base.row.name!r} ({key} = "
                f"{mine[key]!r}, not {theirs[key]!r}); give each protocol an ablation of its own, or pass "
                "--mixed-protocols for one table without differences across protocols")
