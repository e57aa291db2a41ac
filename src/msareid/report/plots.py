"""Plots of the report, drawn with matplotlib's non-interactive backend and saved as PNG."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

from msareid.fileio import atomic_path

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MODALITY_MARKERS = {"RGB": "o", "IR": "s", "R2I": "^", "I2R": "v"}


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def cmc_plot(curves: dict[str, Sequence[float]], path: str | os.PathLike[str], title: str = "CMC") -> Path:
    """Cumulative match curves, one line a run, in percent."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, cmc in curves.items():
        ranks = range(1, len(cmc) + 1)
        ax.plot(ranks, [100 * v for v in cmc], marker="o", markersize=3, label=name)
    ax.set(xlabel="rank", ylabel="matching rate (%)", title=title, ylim=(0, 100))
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def training_curves(runs: dict[str, list[dict[str, Any]]], path: str | os.PathLike[str]) -> Path:
    """Per-epoch mean loss terms of each run (from metrics.jsonl): one panel for every term of
    Eq. 11 the runs logged (a part such as ``img.target_r2i`` stays in the log only)."""
    from msareid.systems.objective import headline

    epochs = {name: [r for r in records if r.get("event") == "epoch" and "losses" in r]
              for name, records in runs.items()}
    terms = list(dict.fromkeys(k for rs in epochs.values() for r in rs for k in headline(r["losses"]))) or ["total"]
    fig, axes = plt.subplots(1, len(terms), figsize=(3.2 * len(terms), 2.8), squeeze=False)
    axes = axes[0]
    for ax, term in zip(axes, terms):
        for name, rs in epochs.items():
            points = [(r["epoch"], r["losses"][term]) for r in rs if term in r["losses"]]
            if points:
                ax.plot(*zip(*points), label=name)
        ax.set(title=f"L_{term}", xlabel="epoch")
        ax.grid(alpha=0.3)
    axes[0].legend()
    return _save(fig, path)


def eval_curves(runs: dict[str, list[dict[str, Any]]], path: str | os.PathLike[str],
                colour_of: dict[str, str] | None = None) -> Path | None:
    """Rank-1 and mAP of the evaluations logged during training (``eval.every``), one line a run;
    None when no run logged any. ``colour_of`` gives runs of one group (an ablation row) one colour."""
    evals = {name: sorted({r["epoch"]: r for r in records if r.get("event") == "eval"}.items())
             for name, records in runs.items()}
    evals = {name: points for name, points in evals.items() if points}
    if not evals:
        return None
    groups = list(dict.fromkeys((colour_of or {}).get(name, name) for name in evals))
    palette = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, key, label in ((axes[0], "rank1", "Rank-1 (%)"), (axes[1], "mAP", "mAP (%)")):
        labelled: set[str] = set()
        for name, points in evals.items():
            group = (colour_of or {}).get(name, name)
            ax.plot([e for e, _ in points], [100 * r[key] for _, r in points], lw=1.2,
                    color=palette(groups.index(group) % 10), label=None if group in labelled else group)
            labelled.add(group)
        ax.set(xlabel="epoch", ylabel=label, title=f"test {label.split(' ')[0]} during training")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def tsne_plot(points: Any, ids: Sequence[int], modalities: Sequence[str], path: str | os.PathLike[str],
              title: str) -> Path:
    """2-D embedding: colour = identity, marker = modality (as the paper's Fig. 6)."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    palette = plt.get_cmap("tab10")
    order = {pid: i for i, pid in enumerate(sorted(set(ids)))}
    for modality, marker in MODALITY_MARKERS.items():
        rows = [i for i, m in enumerate(modalities) if m == modality]
        if rows:
            ax.scatter(points[rows, 0], points[rows, 1], c=[palette(order[ids[i]] % 10) for i in rows],
                       marker=marker, s=22, label=modality, edgecolors="none", alpha=0.85)
    ax.set(title=title, xticks=[], yticks=[])
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def ablation_plot(result: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Per-seed mAP and Rank-1 of each ablation row (one colour a seed, the mean as a bar), and each
    row's paired difference to the baseline with its 95% interval."""
    rows = result["rows"]
    names = [r["name"] for r in rows]
    seeds = sorted({run["seed"] for r in rows for run in r["runs"]})
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, 3, figsize=(max(9, 1.3 * len(rows) * 2), 3.8))
    for ax, key, label in ((axes[0], "mAP", "mAP (%)"), (axes[1], "rank1", "Rank-1 (%)")):
        for i, r in enumerate(rows):
            for run in r["runs"]:
                ax.scatter(i + 0.08 * (seeds.index(run["seed"]) - len(seeds) / 2), 100 * run[key], s=16,
                           color=colours(seeds.index(run["seed"]) % 10),
                           label=f"seed {run['seed']}" if i == 0 else None)
            if r["runs"]:
                ax.hlines(100 * r["mean"][key], i - 0.3, i + 0.3, color="black")
        ax.set_xticks(range(len(rows)), names, rotation=40, ha="right", fontsize=8)
        ax.set(ylabel=label, title=f"{label.split(' ')[0]} per seed (bar: mean)")
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=7)
    ax = axes[2]
    for i, r in enumerate(rows):
        d = r.get("diff_vs_baseline", {}).get("mAP")
        if not d or r["name"] == result["baseline"]:
            continue
        lo = d["low"] if d["low"] is not None else d["mean"]
        hi = d["high"] if d["high"] is not None else d["mean"]
        ax.errorbar(i, 100 * d["mean"], yerr=[[100 * (d["mean"] - lo)], [100 * (hi - d["mean"])]], fmt="o",
                    color="tab:green" if lo > 0 else "tab:red" if hi < 0 else "tab:grey", capsize=3)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(rows)), names, rotation=40, ha="right", fontsize=8)
    ax.set(ylabel="Δ mAP (points)", title=f"paired Δ mAP vs {result['baseline']}, 95% CI")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _save(fig, path)
