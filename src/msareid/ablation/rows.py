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
from msareid.systems import SYSTEMS
from msareid.systems.msa import isa


@dataclass(frozen=True)
class Row:
    """One variant: ``settings`` maps ``section.key`` to the value that replaces the base config's."""

    name: str
    settings: dict[str, Any] = field(default_factory=dict)


# Table 4: B; B + ISA (feature losses only) with R2I, I2R, both; B + ISA + SSC (L_total) with R2I,
# I2R; MSA (L_total, four modalities).
TABLE4 = (
    Row("B", isa(False, False, "none", "none")),
    Row("B+ISA(R2I)", isa(True, False, "none", "none")),
    Row("B+ISA(I2R)", isa(False, True, "none", "none")),
    Row("B+ISA", isa(True, True, "none", "none")),
    Row("B+ISA+SSC(R2I)", isa(True, False, "ssl_plus", "ssl")),
    Row("B+ISA+SSC(I2R)", isa(False, True, "ssl_plus", "ssl")),
    Row("MSA", isa(True, True, "ssl_plus", "ssl")),
)

# Table 5: the loss on (X_s, X_a) / the loss on (X_t, X_a), both adapters; index 5 is MSA. The
# baseline B comes first so that every row has its paired difference to it.
TABLE5 = (
    Row("B", isa(False, False, "none", "none")),
    Row("SSL/SSL", isa(True, True, "ssl", "ssl")),
    Row("SSL+/SSL+", isa(True, True, "ssl_plus", "ssl_plus")),
    Row("SSL+/x", isa(True, True, "ssl_plus", "none")),
    Row("x/SSL", isa(True, True, "none", "ssl")),
    Row("MSA", isa(True, True, "ssl_plus", "ssl")),
)


def _system_row(name: str) -> Row:
    """A system as its reference trains it (its whole recipe), named by its title."""
    return Row(SYSTEMS[name].title, dict(SYSTEMS[name].recipe))


def _msa_on(name: str) -> Row:
    """MSA "with the same backbone, data and network augmentation" as system ``name``: that system's
    network and training recipe plus MSA's settings; the loss weights come from the base config
    (e.g. 13:10:7 from configs/regdb.toml), so the two rows differ by MSA's contribution only."""
    return Row(f"MSA({SYSTEMS[name].title})", {**SYSTEMS[name].network, **SYSTEMS["msa"].recipe})


# Table 3: the systems the paper compares with, as their references train them, and MSA on the
# first one's network and recipe. The backbone, image size, dataset and protocol come from the base
# config, so a CPU study runs the same rows on a small backbone.
TABLE3 = (_system_row("agw"), _system_row("ddag"), _msa_on("agw"))


def _plus(row: Row, option: str) -> Row:
    """``row`` with a data option's settings (e.g. channel augmentation), named "ROW+TITLE"."""
    return Row(f"{row.name}+{SYSTEMS[option].title}", {**row.settings, **SYSTEMS[option].recipe})


# Channel augmentation on top of the baseline, MSA and the first Table 3 system: each "+CA" row
# differs from its row by the augmentation only (those rows keep their recipe's epochs; the
# channel augmentation reference trains 100: set train.epochs on the base or a row).
CHANNEL = (TABLE4[0], _plus(TABLE4[0], "ca"), TABLE4[-1], _plus(TABLE4[-1], "ca"), TABLE3[0], _plus(TABLE3[0], "ca"))

# Figure 7: MSA under proportions alpha:beta:gamma of its three loss weights (Eq. 11), the paper's
# 13:10:7 for RegDB first (the baseline of the paired differences), then each weight in turn moved
# down and up with the other two kept, and 1:1:1 (the SYSU-MM01 setting).
FIG7_PROPORTIONS = ((13, 10, 7), (10, 10, 10), (7, 10, 7), (16, 10, 7), (13, 7, 7), (13, 13, 7), (13, 10, 4),
                    (13, 10, 10))
FIG7 = tuple(Row(f"{a}:{b}:{g}", {**SYSTEMS["msa"].recipe, "loss.alpha": a / 10, "loss.beta": b / 10,
                                  "loss.gamma": g / 10}) for a, b, g in FIG7_PROPORTIONS)

ROW_SETS: dict[str, tuple[Row, ...]] = {"table3": TABLE3, "table4": TABLE4, "table5": TABLE5, "channel": CHANNEL,
                                        "fig7": FIG7}


def describe_sets() -> str:
    """Each row set and its rows, e.g. "table5 (B, SSL/SSL, ...)", for ``--help``."""
    return "; ".join(f"{name} ({', '.join(r.name for r in rows)})" for name, rows in ROW_SETS.items())


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
    """The rows of ``--rows`` (a set name or a TOML file, each), restricted to the names in ``only``
    when given, then every ``--row`` (always kept: a row one writes out is a row one wants). A name
    in ``only`` that no row has, and an empty ``only``, are refused."""
    rows: list[Row] = []
    for s in sets:
        if s in ROW_SETS:
            rows.extend(ROW_SETS[s])
        elif s.endswith(".toml"):
            rows.extend(rows_from_toml(s))
        else:
            raise UserError(f"--rows {s!r}: expected one of {', '.join(ROW_SETS)} or a .toml file of rows")
    mine = [parse_row(t) for t in custom]
    if only is not None:
        if not only:
            raise UserError("--only: no row named; give the rows to keep, e.g. --only B,MSA")
        names = {r.name for r in rows + mine}
        missing = [n for n in only if n not in names]
        if missing:
            raise UserError(f"--only {', '.join(missing)}: no such row; rows: "
                            f"{', '.join(r.name for r in rows + mine)}")
        rows = [r for r in rows if r.name in only]
    rows.extend(mine)
    if not rows:
        raise UserError(f"no rows: give --rows {'|'.join(ROW_SETS)}|FILE.toml and/or --row NAME:key=value,...")
    seen: set[str] = set()
    for r in rows:
        if r.name in seen:
            raise UserError(f"row {r.name!r} is given twice; row names must be unique")
        seen.add(r.name)
    return rows


def slug(name: str) -> str:
    """A folder name for a row: letters, digits, '-', '_' ('+' becomes 'p')."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name.replace("+", "p")).strip("_") or "row"
