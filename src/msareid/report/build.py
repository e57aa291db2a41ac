"""``msareid report``: one HTML page for one or more runs, with the PNGs it shows.

For each run folder (``config.toml``, ``last.pt``, ``metrics.jsonl``, optionally ``eval.json``):
the evaluation (run now and saved as ``eval.json`` when missing), CMC curves, training curves,
generated modalities (Fig. 5), a t-SNE of the modalities' features (Fig. 6) and ranking lists.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msareid.config import Config
from msareid.data.datasets import open_dataset
from msareid.data.records import Record
from msareid.errors import UserError
from msareid.fileio import save_json, write_text
from msareid.inference import (
    evaluate_model,
    extract_records,
    feature_title,
    headline_feature,
    load_trained,
    results_json,
)
from msareid.report import figures
from msareid.report.plots import cmc_plot, eval_curves, training_curves
from msareid.systems import describe
from msareid.training.logs import best_evaluation, read_metrics

KEYS = (("rank1", "Rank-1"), ("rank10", "Rank-10"), ("rank20", "Rank-20"), ("mAP", "mAP"), ("mINP", "mINP"))


def _test_split(config: Config, root: str) -> tuple[list[Record], list[Record]]:
    """Query and gallery records shown in the ranking lists: the first run of the run's protocol,
    as it is scored (a transposed run shows its gallery images as the queries)."""
    from msareid.inference import test_settings

    reader = open_dataset(config.data.name, root, config.data.trial)
    return reader.test_runs(dataclasses.replace(test_settings(config), trials=1))[0].scored()


@dataclass
class RunView:
    name: str
    folder: Path
    config: Config
    result: dict[str, Any]
    figures: dict[str, str]
    metrics: list[dict[str, Any]]


def _run(folder: Path, out: Path, root: str | None, index: int) -> RunView:
    ckpt = folder / "last.pt"
    model, config, state = load_trained(ckpt)
    root = root or _data_root(folder, config.data.root)
    if not root:
        raise UserError(f"{folder}: the run's config has no data.root; pass --root")
    eval_path = folder / "eval.json"
    if eval_path.is_file():
        result = json.loads(eval_path.read_text())
    else:
        result = results_json(evaluate_model(model, config, config.data.name, root), str(ckpt))
        save_json(result, eval_path)
    files = out.parent / f"{out.stem}_files"
    tag = f"{index}_{folder.name}"
    figs: dict[str, str] = {}
    rgb, ir = open_dataset(config.data.name, root, config.data.trial).train()
    grid = figures.style_grid(model, rgb, ir, config, files / f"{tag}_styles.png")
    if grid is not None:
        figs["styles"], figs["styles_header"] = str(grid[0]), grid[1]
    query, gallery = _test_split(config, root)
    figs["tsne"] = str(figures.tsne_figure(model, query + gallery, config, files / f"{tag}_tsne.png",
                                           f"{folder.name}: {describe(config)}"))
    bn = extract_records(model, query + gallery, config)[headline_feature(model)]
    figs["ranking"] = str(figures.ranking_figure(bn.rows(query), bn.rows(gallery), query, gallery, config,
                                                 files / f"{tag}_ranking.png"))
    return RunView(folder.name, folder, config, {**result, "epochs": state["epoch"]}, figs, read_metrics(folder))


def _data_root(folder: Path, root: str) -> str:
    """The run's ``data.root``; a relative one that does not exist from here is taken relative to
    the directory the run was trained from (its ``metrics.jsonl`` says), so a report can be made
    from any working directory."""
    if not root or Path(root).is_absolute() or Path(root).exists():
        return root
    for record in read_metrics(folder):
        if record.get("event") in ("start", "resume") and record.get("cwd"):
            candidate = Path(record["cwd"]) / root
            if candidate.exists():
                return str(candidate)
    return root


def build_report(runs: list[str | os.PathLike[str]], out: str | os.PathLike[str], root: str | None = None) -> Path:
    """Write the HTML report of ``runs`` to ``out`` (pictures in ``<out stem>_files/``)."""
    out = Path(out)
    views = [_run(Path(r), out, root, i) for i, r in enumerate(runs)]
    _unique_names(views)
    files = out.parent / f"{out.stem}_files"
    protocols = list(dict.fromkeys(v.result["protocol"] for v in views))
    cmc = cmc_plot({v.name: v.result["cmc"] for v in views}, files / "cmc.png",
                   f"CMC, {protocols[0]}" if len(protocols) == 1 else "CMC (protocols differ: see the table)")
    curves = training_curves({v.name: v.metrics for v in views}, files / "training.png")
    during = eval_curves({v.name: v.metrics for v in views}, files / "evaluations.png")
    page = _html(views, Path(os.path.relpath(cmc, out.parent)), Path(os.path.relpath(curves, out.parent)), out,
                 during)
    return write_text(out, page)


def _unique_names(views: list[RunView]) -> None:
    """Label runs by their folder's name, or by its last two parts where names repeat (B/seed0)."""
    names = [v.name for v in views]
    for v in views:
        if names.count(v.name) > 1:
            v.name = f"{v.folder.parent.name}/{v.folder.name}"
    names = [v.name for v in views]
    for v in views:
        if names.count(v.name) > 1:
            v.name = str(v.folder)


def _img(path: str | Path, out: Path, alt: str) -> str:
    rel = os.path.relpath(path, out.parent)
    return f'<img src="{html.escape(rel)}" alt="{html.escape(alt)}">'


def _html(views: list[RunView], cmc: Path, curves: Path, out: Path, during: Path | None = None) -> str:
    head = "".join(f"<th>{label}</th>" for _, label in KEYS)
    rows = []
    mixed = len({v.result["protocol"] for v in views}) > 1
    for v in views:
        r = v.result
        cells = "".join(f"<td>{100 * r[k]:.2f}</td>" for k, _ in KEYS)
        pooled = r.get("pooled", {})
        pooled_cells = f"{100 * pooled['rank1']:.2f} / {100 * pooled['mAP']:.2f}" if pooled else "-"
        best = best_evaluation(v.folder, r["protocol"], r["epochs"])
        best_cells = (f"{100 * best['rank1']:.2f} / {100 * best['mAP']:.2f} (epoch {best['epoch']})" if best else "-")
        feature = r.get("feature", "bnneck")
        label = describe(v.config) + (f", {feature_title(feature)}" if feature != "bnneck" else "")
        label += f" ({r['protocol']})" if mixed else ""
        rows.append(f"<tr><td>{html.escape(v.name)}</td><td>{html.escape(label)}</td>{cells}"
                    f"<td>{pooled_cells}</td><td>{r['epochs']}</td><td>{best_cells}</td></tr>")
    first = dict(views[0].result)
    if mixed:  # no one headline: each run's protocol is named beside its model
        first["protocol"] = "differs between runs (named in the model column)"
    sections = _sections(views, out)
    if during is not None:
        sections = (f"<h2>Evaluations during training</h2><p>Rank-1 and mAP on the test protocol every "
                    f"<code>eval.every</code> epochs (information only: each run's model is its last epoch's)."
                    f"</p>{_img(during, out, 'evaluations during training')}\n" + sections)
    return _page(rows, head, first, cmc, curves, out, sections)


def _sections(views: list[RunView], out: Path) -> str:
    sections = []
    for v in views:
        parts = [f"<h3>{html.escape(v.name)}: {html.escape(describe(v.config))}</h3>"]
        if "styles" in v.figures:
            parts.append(f"<p>Generated modalities ({html.escape(v.figures['styles_header'])}), as the paper's "
                         f"Fig. 5:</p>{_img(v.figures['styles'], out, 'generated modalities')}")
        parts.append(f"<p>t-SNE of BNNeck features (colour: identity, marker: modality), as the paper's Fig. 6:"
                     f"</p>{_img(v.figures['tsne'], out, 't-SNE')}")
        parts.append(f"<p>Ranking lists (green: true match, red: false match):</p>"
                     f"{_img(v.figures['ranking'], out, 'ranking lists')}")
        sections.append("\n".join(parts))
    return "".join(sections)


def run_sections(runs: list[Path], out: Path, root: str | None = None) -> str:
    """The pictures of ``runs`` (Fig. 5 grid, t-SNE, ranking lists) as HTML sections."""
    views = [_run(r, out, root, i) for i, r in enumerate(runs)]
    for v in views:
        v.name = f"{v.folder.parent.name}/{v.folder.name}"  # e.g. MSA/seed0
    return "<h2>Runs</h2>" + _sections(views, out)


def _page(rows: list[str], head: str, first: dict, cmc: Path, curves: Path, out: Path, sections: str) -> str:
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>msareid report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #bbb;padding:4px 8px;text-align:right}}
td:first-child,td:nth-child(2){{text-align:left}}img{{max-width:100%;margin:4px 0}}</style></head>
<body><h1>msareid report</h1>
<p>Protocol <b>{html.escape(first['protocol'])}</b>, {first.get('trials', 1)} trial(s), gallery sampler named in
the protocol; feature: BNNeck (or the feature head a system made its test feature, as its reference reports),
metric {html.escape(str(first.get('metric', 'cosine')))}.
Model selection: the last epoch of each run. The last column, when a run was evaluated during training
(<code>eval.every</code>), is the epoch with the best test Rank-1 as the reference code selects it: chosen
on the test set, so optimistic.</p>
<table><tr><th>run</th><th>model</th>{head}<th>pooled R1 / mAP</th><th>epochs</th>
<th>best-epoch R1 / mAP (test-selected)</th></tr>
{''.join(rows)}</table>
<h2>CMC</h2>{_img(out.parent / cmc, out, 'CMC curves')}
<h2>Training</h2>{_img(out.parent / curves, out, 'training curves')}
<h2>Runs</h2>
{sections}
</body></html>
"""
