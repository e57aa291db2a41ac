"""Rows of an ablation: a name and the config keys it changes from the base config.

The rows of the paper's Table 4 (which modalities F sees, with or without the image losses SSC)
and Table 5 (which of SSL / SSL+ goes on which image pair) carry the paper's names. A row of one's
own is ``NAME:section.key=value,section.key=value`` or a TOML table ``[NAME]`` of dotted keys.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msareid.config import parse_override, tomllib
from msareid.errors import UserError


@dataclass(frozen=True)
class Row:
    """One variant: ``settings`` maps ``section.key`` to the value that replaces the base config's."""

    name: str
    settings: dict[str, Any] = field(default_factory=dict)


def _isa(r2i: bool, i2r: bool, source: str, target: str) -> dict[str, Any]:
    return {"model.r2i": r2i, "model.i2r": i2r, "loss.source_loss": source, "loss.target_loss": target}


# Table 4: B; B + ISA (feature losses only) with R2I, I2R, both; B + ISA + SSC (L_total) with R2I,
# I2R; MSA (L_total, four modalities).
TABLE4 = (
    Row("B", _isa(False, False, "none", "none")),
    Row("B+ISA(R2I)", _isa(True, False, "none", "none")),
    Row("B+ISA(I2R)", _isa(False, True, "none", "none")),
    Row("B+ISA", _isa(True, True, "none", "none")),
    Row("B+ISA+SSC(R2I)", _isa(True, False, "ssl_plus", "ssl")),
    Row("B+ISA+SSC(I2R)", _isa(False, True, "ssl_plus", "ssl")),
    Row("MSA", _isa(True, True, "ssl_plus", "ssl")),
)

# Table 5: the loss on (X_s, X_a) / the loss on (X_t, X_a), both adapters; index 5 is MSA. The
# baseline B comes first so that every row has its paired difference to it.
TABLE5 = (
    Row("B", _isa(False, False, "none", "none")),
    Row("SSL/SSL", _isa(True, True, "ssl", "ssl")),
    Row("SSL+/SSL+", _isa(True, True, "ssl_plus", "ssl_plus")),
    Row("SSL+/x", _isa(True, True, "ssl_plus", "none")),
    Row("x/SSL", _isa(True, True, "none", "ssl")),
    Row("MSA", _isa(True, True, "ssl_plus", "ssl")),
)

# Table 3: AGW (Ye et al., TPAMI 2021) as its reference trains it, and MSA "with the same backbone,
# data and network augmentation": AGW's network (two-stream stem, non-local blocks, GeM, BNNeck),
# its triplet (WRT, over all four modalities), batch (8 ids x (4 + 4)), augmentation (no random
# erasing), SGD recipe and 81 epochs, plus MSA's ISA and L_img (Eq. 9) with SSC as in MSA. The two
# rows differ by MSA's contribution only (MSA(AGW) takes its loss weights from the base config, e.g.
# 13:10:7 from configs/regdb.toml). The backbone, image size, dataset and protocol come from
# the base config, so a CPU study runs the same rows on a small backbone (README, "Table 3").
AGW_RECIPE: dict[str, Any] = {
    "model.two_stream": True, "model.non_local": "one", "model.pooling": "gem",
    "model.parts": 0, "model.graph_attention": False,
    "loss.triplet": "wrt",
    "sampler.num_ids": 8, "sampler.num_instances": 4, "data.random_erasing": 0.0,
    "train.optimizer": "sgd", "train.lr": 0.1, "train.base_lr_factor": 0.1, "train.momentum": 0.9,
    "train.nesterov": True, "train.weight_decay": 5e-4, "train.epochs": 81, "train.warmup_epochs": 10,
    "train.milestones": [20, 50], "train.lr_decay": 0.1,
}
# DDAG (Ye et al., ECCV 2020) as its reference trains it: AGW's two-stream network without non-local
# blocks, average pooling, part aggregation (3 parts, its feature is the test feature) and graph
# attention; ID + batch-hard triplet (margin 0.3) + part ID + the graph loss at the dynamic weight;
# AGW's batch, augmentation, SGD recipe and 81 epochs (the same in both references).
DDAG_RECIPE: dict[str, Any] = {
    **AGW_RECIPE, "model.non_local": "off", "model.pooling": "avg", "model.parts": 3,
    "model.graph_attention": True, "loss.triplet": "batch_hard", "loss.margin": 0.3,
}
TABLE3 = (
    Row("AGW", {**AGW_RECIPE, **_isa(False, False, "none", "none"), "loss.gamma": 1.0}),  # ID + WRT, equal weights
    Row("DDAG", {**DDAG_RECIPE, **_isa(False, False, "none", "none"), "loss.gamma": 1.0}),
    Row("MSA(AGW)", {**AGW_RECIPE, **_isa(True, True, "ssl_plus", "ssl")}),
)

# Channel augmentation (CAJ, Ye et al., ICCV 2021) on top of the baseline, MSA and AGW: each "+CA" row
# is its row plus CAJ's data options (its three pipelines, a second RGB view in the ID and triplet
# losses, no other erasing), so a "+CA" row differs from its row by the augmentation only. The AGW
# rows are Table 3's (81 epochs; the CAJ reference trains 100: set train.epochs on the base or a row).
CHANNEL_AUG: dict[str, Any] = {"data.channel_aug": True, "data.random_erasing": 0.0}
CHANNEL = (
    TABLE4[0], Row("B+CA", {**TABLE4[0].settings, **CHANNEL_AUG}),
    TABLE4[-1], Row("MSA+CA", {**TABLE4[-1].settings, **CHANNEL_AUG}),
    TABLE3[0], Row("AGW+CA", {**TABLE3[0].settings, **CHANNEL_AUG}),
)

ROW_SETS: dict[str, tuple[Row, ...]] = {"table3": TABLE3, "table4": TABLE4, "table5": TABLE5, "channel": CHANNEL}

_NEXT_KEY = re.compile(r",(?=\s*[A-Za-z_]\w*\.[A-Za-z_]\w*\s*=)")  # commas that start a new key=value


def parse_row(text: str) -> Row:
    """``NAME:section.key=value,section.key=value`` (values as in ``--set``; lists may hold commas).

    ``NAME:`` alone is the base config itself.
    """
    name, sep, rest = text.partition(":")
    name = name.strip()
    if not sep or not name:
        raise UserError(f"--row {text!r}: expected NAME:section.key=value,..., e.g. 'noSSC:loss.source_loss=none'")
    settings: dict[str, Any] = {}
    for part in (p for p in _NEXT_KEY.split(rest) if p.strip()):
        section, key, value = parse_override(part.strip())
        settings[f"{section}.{key}"] = value
    return Row(name, settings)


def _flatten(prefix: str, table: dict[str, Any], out: dict[str, Any]) -> None:
    for key, value in table.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            _flatten(dotted, value, out)
        else:
            out[dotted] = value


def rows_from_toml(path: str | os.PathLike[str]) -> list[Row]:
    """Rows from a TOML file: one table a row, e.g. ``["B+ISA"]`` then ``model.r2i = true``."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"rows file {p} does not exist")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"rows file {p} is not valid UTF-8 TOML: {exc}") from None
    rows = []
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise UserError(f"rows file {p}: {name!r} must be a table of section.key = value lines")
        settings: dict[str, Any] = {}
        _flatten("", table, settings)
        bad = [k for k in settings if k.count(".") != 1]
        if bad:
            raise UserError(f"rows file {p}: row {name!r} has key(s) {', '.join(bad)}; expected section.key")
        rows.append(Row(name, settings))
    if not rows:
        raise UserError(f"rows file {p} holds no row; write one table a row, e.g. [MSA]")
    return rows


def resolve_rows(sets: list[str], custom: list[str], only: list[str] | None = None) -> list[Row]:
    """The rows of ``--rows`` (a set name or a TOML file, each) then ``--row``, optionally
    restricted to the names in ``only`` (in the given order of rows)."""
    rows: list[Row] = []
    for s in sets:
        if s in ROW_SETS:
            rows.extend(ROW_SETS[s])
        elif s.endswith(".toml"):
            rows.extend(rows_from_toml(s))
        else:
            raise UserError(f"--rows {s!r}: expected one of {', '.join(ROW_SETS)} or a .toml file of rows")
    rows.extend(parse_row(t) for t in custom)
    if only:
        names = {r.name for r in rows}
        missing = [n for n in only if n not in names]
        if missing:
            raise UserError(f"--only {', '.join(missing)}: no such row; rows: {', '.join(r.name for r in rows)}")
        rows = [r for r in rows if r.name in only]
    if not rows:
        raise UserError("no rows: give --rows table3|table4|table5|channel|FILE.toml and/or --row NAME:key=value,...")
    seen: set[str] = set()
    for r in rows:
        if r.name in seen:
            raise UserError(f"row {r.name!r} is given twice; row names must be unique")
        seen.add(r.name)
    return rows


def slug(name: str) -> str:
    """A folder name for a row: letters, digits, '-', '_' ('+' becomes 'p')."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name.replace("+", "p")).strip("_") or "row"
