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
