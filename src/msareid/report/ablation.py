"""The HTML report of an ablation folder (``msareid ablate --out DIR``): the table in the paper's
layout with seed statistics, a plot of per-seed values and paired differences, then the
pictures (Fig. 5, Fig. 6, ranking lists) of one run of the baseline and one of the last row."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from msareid.ablation.stats import BEST_METRICS, BEST_NOTE, DIFF_METRICS, LABELS, METRICS
from msareid.errors import UserError
from msareid.fileio import write_text
from msareid.report.plots import ablation_plot, eval_curves
from msareid.training.logs import read_metrics


def is_ablation(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds an ablation (its ``ablation.json``)."""
    return (Path(folder) / "ablation.json").is_file()


def _is_ablation_result(result: Any) -> bool:
    """Whether ``result`` has the shape of ``ablation.json`` (what the report reads of it)."""
    if not (isinstance(result, dict) and isinstance(result.get("rows"), list) and "baseline" in result
            and "protocol" in result):
        return False
    for row in result["rows"]:
        if not (isinstance(row, dict) and isinstance(row.get("runs"), list) and isinstance(row.get("mean"), dict)
                and isinstance(row.get("std"), dict) and "name" in row):
            return False
        if not all(isinstance(run, dict) and "seed" in run and "run_dir" in run for run in row["runs"]):
            return False
    return True


def run_folder(folder: Path, run_dir: str) -> Path:
    """A run of the ablation in ``folder``: ``run_dir`` relative to it, or (files written before run
    folders were relative) the same ``runs/<row>/seed<S>`` inside it, never another folder's run."""
    p = Path(run_dir)
    return folder / p if not p.is_absolute() else folder / "runs" / p.parent.name / p.name


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"


def _table(result: dict[str, Any]) -> str:
    head = "".join(f"<th>{LABELS[k]}</th>" for k in METRICS)
    head += "".join(f"<th>Δ{LABELS[k]} vs {html.escape(result['baseline'])} [95% CI]</th>" for k in DIFF_METRICS)
    with_best = any("best_mean" in row for row in result["rows"])
    if with_best:
        head += "".join(f"<th>best-epoch {LABELS[k]} (test-selected)</th>" for k in BEST_METRICS)
    lines = [f"<table><tr><th>row</th><th>seeds</th>{head}</tr>"]
    for row in result["rows"]:
        cells = "".join(f"<td>{_pct(row['mean'][k])} ± {_pct(row['std'][k])}</td>" for k in METRICS)
        for k in DIFF_METRICS:
            d = row["diff_vs_baseline"].get(k)
            if row["name"] == result["baseline"] or not d:
                cells += "<td>-</td>"
            elif d["low"] is None:
                cells += f"<td>{100 * d['mean']:+.2f} (1 seed)</td>"
            else:
                colour = "#1a7f37" if d["low"] > 0 else "#b42318" if d["high"] < 0 else "#444"
                cells += (f"<td style='color:{colour}'>{100 * d['mean']:+.2f} "
                          f"[{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]</td>")
        if with_best:
            cells += "".join(f"<td>{_pct(row['best_mean'][k])} ± {_pct(row['best_std'][k])}</td>"
                             if "best_mean" in row else "<td>-</td>" for k in BEST_METRICS)
        lines.append(f"<tr><td>{html.escape(row['name'])}</td><td>{len(row['runs'])}</td>{cells}</tr>")
    return "\n".join(lines) + "</table>"


def loss_table(runs: dict[str, tuple[str, list[dict[str, Any]]]]) -> str:
    """HTML table of each row's last-epoch loss terms by name (mean over its seeds): the terms of
    every objective that rows use (``id``, ``triplet``, ``img``, and the terms systems add, e.g.
    ``part`` and ``graph``, the latter unweighted, with its per-epoch weight)."""
    from msareid.systems.objective import headline

    last: dict[str, list[dict[str, float]]] = {}
    for name, records in runs.values():
        epochs = [r for r in records if r.get("event") == "epoch" and "losses" in r]
        if epochs:
            values = dict(headline(epochs[-1]["losses"]))
            values.update({key.replace("_", " "): value for key, value in epochs[-1].items()
                           if key not in ("event", "epoch", "lr", "losses")})
            last.setdefault(name, []).append(values)
    if not last:
        return ""
    terms = list(dict.fromkeys(k for rows in last.values() for v in rows for k in v))
    head = "".join(f"<th>{html.escape(t)}</th>" for t in terms)
    lines = []
    for name, rows in last.items():
        present = {t: [v[t] for v in rows if t in v] for t in terms}
        cells = "".join(f"<td>{sum(x) / len(x):.3f}</td>" if x else "<td>-</td>" for x in present.values())
        lines.append(f"<tr><td>{html.escape(name)}</td>{cells}</tr>")
    return (f"<h2>Loss terms of the last epoch</h2><p>Mean over each row's seeds of the epoch means logged in "
            f"metrics.jsonl.</p><table><tr><th>row</th>{head}</tr>{''.join(lines)}</table>")


def build_ablation_report(folder: str | os.PathLike[str], out: str | os.PathLike[str],
                          root: str | None = None, pictures: bool = True) -> Path:
    """Write the HTML report of the ablation in ``folder`` to ``out``."""
    from msareid.report.build import run_sections

    folder, out = Path(folder), Path(out)
    try:
        result = json.loads((folder / "ablation.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{folder / 'ablation.json'} is not readable JSON ({exc})") from None
    if not _is_ablation_result(result):
        raise UserError(f"{folder / 'ablation.json'} is not what msareid ablate writes (rows with name, runs, "
                        "mean and std; baseline; protocol); write it again with msareid ablate ... --collect")
    files = out.parent / f"{out.stem}_files"
    plot = ablation_plot(result, files / "ablation.png")
    seeds = sorted({run["seed"] for r in result["rows"] for run in r["runs"]})
    runs = {f"{r['name']}/seed{run['seed']}": (r["name"], run_folder(folder, run["run_dir"]))
            for r in result["rows"] for run in r["runs"]}
    metrics = {k: (name, read_metrics(d)) for k, (name, d) in runs.items()}
    during = eval_curves({k: m for k, (_, m) in metrics.items()}, files / "evaluations.png",
                         {k: name for k, (name, _) in runs.items()})
    best_text = ""
    if during is not None:
        best_text = (f"<h2>Evaluations during training</h2><p>The {html.escape(BEST_NOTE)}.</p>"
                     f"<img src=\"{html.escape(os.path.relpath(during, out.parent))}\" "
                     "alt=\"evaluations during training\">")
    sections = ""
    if pictures:
        chosen = [r for r in result["rows"] if r["name"] == result["baseline"]] + result["rows"][-1:]
        dirs = list(dict.fromkeys(run_folder(folder, r["runs"][0]["run_dir"]) for r in chosen if r["runs"]))
        sections = run_sections(dirs, out, root)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>msareid ablation</title>
<style>body{{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #bbb;padding:4px 8px;text-align:right}}
td:first-child{{text-align:left}}img{{max-width:100%;margin:4px 0}}</style></head>
<body><h1>msareid ablation</h1>
<p>Protocol <b>{html.escape(result['protocol'])}</b>, each row's test feature (BNNeck, or the
feature head its system made the test feature), the last epoch of every run; seeds
{seeds}, the same for every row. Cells: mean ± sample standard deviation over seeds (%). Δ: the mean of
the per-seed differences to <b>{html.escape(result['baseline'])}</b> with a 95% Student-t interval
(green: above 0, red: below 0, grey: the interval holds 0, so these runs cannot tell the row from the
baseline). Base config: <code>{html.escape(str(result.get('config', '')))}</code>
{html.escape(' '.join(result.get('overrides', [])))}.</p>
{_table(result)}
<h2>Per seed</h2><img src="{html.escape(os.path.relpath(plot, out.parent))}" alt="per-seed values">
{loss_table(metrics)}
{best_text}
{sections}
</body></html>
"""
    return write_text(out, page)
