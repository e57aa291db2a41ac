"""The report: t-SNE, figures and the HTML page of trained runs."""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from msareid.cli import main
from msareid.engine import train
from msareid.report.build import describe
from msareid.report.tsne import tsne


def test_tsne_keeps_separated_clusters_apart() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=10, size=(3, 20))
    x = np.concatenate([c + rng.normal(size=(15, 20)) for c in centres])
    y = tsne(x, perplexity=10, iterations=300, seed=0)
    labels = np.repeat(np.arange(3), 15)
    d = ((y[:, None] - y[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (labels[d.argmin(1)] == labels).mean() > 0.95
    assert np.array_equal(y, tsne(x, perplexity=10, iterations=300, seed=0))


def test_describe_names_the_table_rows(synth_sysu: Path, tmp_path: Path, tiny_config) -> None:
    cfg = tiny_config(synth_sysu, tmp_path)
    assert describe(cfg) == "MSA"
    base = tiny_config(synth_sysu, tmp_path, **{"model.r2i": "false", "model.i2r": "false"})
    assert describe(base) == "baseline (no ISA)"
    isa = tiny_config(synth_sysu, tmp_path, **{"loss.source_loss": "none", "loss.target_loss": "none"})
    assert describe(isa) == "B + ISA (R2I, I2R)"


def test_report_of_baseline_and_msa(synth_sysu: Path, tmp_path: Path, capsys, tiny_config) -> None:
    runs = []
    for name, extra in (("baseline", {"model.r2i": "false", "model.i2r": "false"}), ("msa", {})):
        cfg = tiny_config(synth_sysu, tmp_path / "cache", **{"train.epochs": 1, "eval.trials": 2, **extra})
        train(cfg, tmp_path / name, progress=False)
        runs.append(str(tmp_path / name))
    out = tmp_path / "report.html"
    assert main(["report", *runs, "--out", str(out)]) == 0
    page = out.read_text()
    assert "baseline (no ISA)" in page and "<td>MSA</td>" in page and "last epoch" in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == 2 + 2 + 3  # CMC, training; t-SNE + ranking per run; Fig. 5 for MSA only
    for src in images:
        with Image.open(out.parent / src) as img:
            assert img.size[0] > 100 and img.size[1] > 100
    assert (tmp_path / "msa" / "eval.json").is_file()  # evaluated once, kept for the next report
    assert main(["report", runs[1]]) == 0 and (tmp_path / "msa" / "report.html").is_file()
    assert main(["report", *runs]) == 2 and "several runs need --out" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_with_a_relative_data_root_reports_from_anywhere(synth_sysu: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Path.cwd()
    monkeypatch.chdir(synth_sysu.parent)
    overrides = [f"data.root={synth_sysu.name}", f"data.cache_dir={tmp_path / 'cache'}", "data.height=32",
                 "data.width=16", "train.epochs=1", "train.max_steps_per_epoch=2", "sampler.num_ids=3",
                 "sampler.num_instances=2", "eval.trials=1"]
    args = ["train", "--config", str(repo / "configs" / "tiny.toml"), "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(args + [x for o in overrides for x in ("--set", o)]) == 0
    monkeypatch.chdir(tmp_path)
    assert main(["report", "run"]) == 0
    assert "t-SNE" in (tmp_path / "run" / "report.html").read_text()


def test_ablation_report_lists_each_rows_loss_terms_by_name() -> None:
    from msareid.report.ablation import loss_table

    def run(losses: dict, **extra: float) -> list[dict]:
        return [{"event": "epoch", "epoch": 1, "losses": {k: v + 1 for k, v in losses.items()}},
                {"event": "epoch", "epoch": 2, "losses": losses, **extra}]

    runs = {"AGW/seed0": ("AGW", run({"total": 2.0, "id": 1.5, "triplet": 0.5, "img": 0.0})),
            "DDAG/seed0": ("DDAG", run({"total": 5.0, "id": 2.0, "triplet": 0.4, "img": 0.0, "part": 2.0, "graph": 3.0,
                                        "img.target_r2i": 9.0}, graph_weight=0.2)),
            "DDAG/seed1": ("DDAG", run({"total": 6.0, "id": 3.0, "triplet": 0.6, "img": 0.0, "part": 2.2, "graph": 4.0},
                                       graph_weight=0.3))}
    page = loss_table(runs)
    head = [h for h in page.split("<th>")[1:]]
    assert [h.split("<")[0] for h in head] == ["row", "total", "id", "triplet", "img", "part", "graph", "graph weight"]
    ddag = page.split("<td>DDAG</td>")[1].split("</tr>")[0]
    assert ddag.count("<td>") == 7 and "<td>5.500</td>" in ddag and "<td>3.500</td>" in ddag
    assert "<td>0.250</td>" in ddag
    assert page.split("<td>AGW</td>")[1].split("</tr>")[0].count("<td>-</td>") == 3  # no part, graph, weight
    assert "target_r2i" not in page and loss_table({}) == ""
