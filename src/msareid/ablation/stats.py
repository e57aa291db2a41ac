"""Seed statistics of an ablation: mean and std over seeds, and each row's paired difference to
the baseline (same seeds) with a 95% Student-t interval; the table in the paper's layout.

Metrics are fractions (0..1) in the JSON and percentages in the tables.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as sps

from msareid.systems import describe_pieces

METRICS = ("rank1", "rank10", "mAP", "mINP")
LABELS = {"rank1": "Rank-1", "rank10": "Rank-10", "mAP": "mAP", "mINP": "mINP"}
DIFF_METRICS = ("mAP", "rank1")
BEST_METRICS = ("rank1", "mAP")  # of the epoch with the best Rank-1 on the test set (eval.every)
BEST_NOTE = ("best epoch: the epoch with the highest Rank-1 among the evaluations during training, selected "
             "on the test set as the reference code does (optimistic); the other columns are the last epoch's")


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def paired_interval(diffs: list[float], level: float = 0.95) -> dict[str, float | None]:
    """Mean of paired differences with its Student-t interval; ``low``/``high`` are None for n < 2."""
    arr = np.asarray(diffs, dtype=np.float64)
    m = float(arr.mean())
    if arr.size < 2:
        return {"mean": m, "low": None, "high": None, "n": int(arr.size)}
    half = float(sps.t.ppf(0.5 + level / 2, arr.size - 1) * arr.std(ddof=1) / math.sqrt(arr.size))
    return {"mean": m, "low": m - half, "high": m + half, "n": int(arr.size)}


def summarise(rows: list[dict[str, Any]], baseline: str) -> list[dict[str, Any]]:
    """Add ``mean``, ``std`` and ``diff_vs_baseline`` to each row (``runs`` hold per-seed metrics).

    A difference pairs the runs of one seed in both rows, scored under one protocol; seeds missing
    from either (or scored under another protocol) are left out.
    """
    base = next((r for r in rows if r["name"] == baseline), None)
    base_by_seed = {run["seed"]: run for run in base["runs"]} if base else {}
    for row in rows:
        runs = row["runs"]
        row["mean"], row["std"] = {}, {}
        for k in METRICS:
            if runs:
                row["mean"][k], row["std"][k] = mean_std([run[k] for run in runs])
        best = [run["best"] for run in runs if "best" in run]
        if runs and len(best) == len(runs):  # every run evaluated during training (eval.every)
            row["best_mean"], row["best_std"] = {}, {}
            for k in BEST_METRICS:
                row["best_mean"][k], row["best_std"][k] = mean_std([b[k] for b in best])
        row["diff_vs_baseline"] = {}
        paired = [(run, base_by_seed[run["seed"]]) for run in runs if run["seed"] in base_by_seed
                  and run.get("protocol", "") == base_by_seed[run["seed"]].get("protocol", "")]
        if paired:
            for k in DIFF_METRICS:
                row["diff_vs_baseline"][k] = paired_interval([a[k] - b[k] for a, b in paired])
    return rows


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"


def _diff(d: dict[str, Any] | None) -> str:
    if not d:
        return "-"
    sign = f"{100 * d['mean']:+.2f}"
    if d["low"] is None:
        return f"{sign} (1 seed)"
    return f"{sign} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]"


def markdown_table(result: dict[str, Any]) -> str:
    """The ablation as a Markdown table: mean ± std (%) over seeds and the paired differences."""
    head = ["row", "R2I", "I2R", "X_s-X_a", "X_t-X_a", "seeds"] + [LABELS[k] for k in METRICS]
    head += [f"Δ{LABELS[k]} vs {result['baseline']} [95% CI]" for k in DIFF_METRICS]
    with_best = any("best_mean" in row for row in result["rows"])
    head += [f"best-epoch {LABELS[k]} (test-selected)" for k in BEST_METRICS] if with_best else []
    with_recipe = any(recipe(row.get("resolved", {})) != DEFAULT_RECIPE for row in result["rows"])
    if with_recipe:
        head.insert(1, "network, triplet, optimiser")
    mixed = result.get("mixed_protocols", False)
    if mixed:
        head.insert(1, "protocol")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result["rows"]:
        s = row.get("resolved", row["settings"])
        mark = ["✓" if s.get("model.r2i") else "×", "✓" if s.get("model.i2r") else "×"]
        losses = [_loss_name(s.get("loss.source_loss")), _loss_name(s.get("loss.target_loss"))]
        if not (s.get("model.r2i") or s.get("model.i2r")):
            losses = ["-", "-"]
        cells = [row["name"], *([row.get("protocol", "")] if mixed else []), *([recipe(s)] if with_recipe else []),
                 *mark, *losses, str(len(row["runs"]))]
        for k in METRICS:
            cells.append(f"{_pct(row['mean'][k])} ± {_pct(row['std'][k])}" if k in row["mean"] else "-")
        cells += [_diff(row["diff_vs_baseline"].get(k)) if row["name"] != result["baseline"] else "0 (baseline)"
                  for k in DIFF_METRICS]
        if with_best:
            cells += [f"{_pct(row['best_mean'][k])} ± {_pct(row['best_std'][k])}" if "best_mean" in row else "-"
                      for k in BEST_METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def recipe(resolved: dict[str, Any]) -> str:
    """A row's network, triplet loss, optimiser (and channel augmentation) in a few words, e.g.
    "2-stem+NL+GeM, WRT, SGD", "2-stem+IWPA+CGSA, hard, SGD" or "1-stem, hard, Adam, channel aug";
    the network's pieces are those the systems declare (:func:`msareid.systems.describe_pieces`)."""
    network = describe_pieces(resolved)
    triplet = {"wrt": "WRT", "batch_hard": "hard"}.get(str(resolved.get("loss.triplet", "batch_hard")), "?")
    optimiser = {"adam": "Adam", "sgd": "SGD"}.get(str(resolved.get("train.optimizer", "adam")), "?")
    augmentation = ", channel aug" if resolved.get("data.channel_aug") else ""
    return f"{network}, {triplet}, {optimiser}{augmentation}"


DEFAULT_RECIPE = recipe({})


def _loss_name(name: Any) -> str:
    return {"ssl": "SSL", "ssl_plus": "SSL+", "none": "×"}.get(str(name), str(name))


def markdown(result: dict[str, Any]) -> str:
    """``ablation.md``: what was run, the table, and how to read it."""
    seeds = sorted({run["seed"] for row in result["rows"] for run in row["runs"]})
    return "\n".join([
        "# Ablation",
        "",
        ("Protocols differ between rows (column `protocol`; differences pair runs of one protocol only), "
         if result.get("mixed_protocols") else f"Protocol `{result['protocol']}`, ")
        + f"each row's test feature (BNNeck, or the head its system made the test feature), last epoch of each "
        f"run; seeds {seeds}. "
        f"Cells: mean ± sample std over seeds, in %. Δ: mean of the per-seed differences to "
        f"`{result['baseline']}` (the same seeds), with a 95% Student-t interval; an interval that "
        "holds 0 means the runs cannot tell the row from the baseline.",
        "",
        markdown_table(result),
        "",
        *([f"The {BEST_NOTE}.", ""] if any("best_mean" in r for r in result["rows"]) else []),
        f"Base config: `{result.get('config', '')}`; overrides: {result.get('overrides', []) or 'none'}.",
        "",
    ])
