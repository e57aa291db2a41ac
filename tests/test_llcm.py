"""LLCM: the reader against literal loops of the reference code's test sets, the ranking rules
against a naive loop, the synthetic layout, and the whole command line on it."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest

from msareid.cli import main
from msareid.data.base import TestSettings
from msareid.data.llcm import LLCM, write_synthetic_llcm
from msareid.data.records import arrays_of
from msareid.errors import UserError
from msareid.eval.driver import FeatureTable, evaluate_runs


@pytest.fixture(scope="module")
def synth_llcm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_llcm(tmp_path_factory.mktemp("synth") / "llcm", ids=24, seed=3, per_camera=3)


def reference_test_set(root: Path, side: str, trial: int | None) -> list[tuple[str, int, int]]:
    """The reference code's query (``trial`` None) or trial gallery, literally: string ids sorted,
    camera folders in order, ``random.seed(trial)`` and ``random.choice`` over sorted full paths;
    id and camera parsed from the path after ``cam`` as the reference does."""
    cameras = [f"test_{side}/cam{c}" for c in (range(1, 10) if side == "vis" else (1, 2, 4, 5, 6, 7, 8, 9))]
    if trial is not None:
        random.seed(trial)
    with open(os.path.join(root, "idx/test_id.txt")) as handle:
        ids = [f"{int(y):04d}" for y in handle.read().splitlines()[0].split(",")]
    files = []
    for pid in sorted(ids):
        for cam in cameras:
            folder = os.path.join(root, cam, pid)
            if os.path.isdir(folder):
                listing = sorted(folder + "/" + name for name in os.listdir(folder))
                if trial is None:
                    files.extend(listing)
                else:
                    files.append(random.choice(listing))
    out = []
    for path in files:
        tail = path.split("cam")[-1]  # the root of a test folder may itself contain "cam"
        out.append((path, int(tail[2:6]), int(tail[0])))
    return out


def _as_tuples(records) -> list[tuple[str, int, int]]:
    return [(os.path.normpath(r.path), r.pid, r.camera) for r in records]


def _norm(items):
    return [(os.path.normpath(p), pid, cam) for p, pid, cam in items]


@pytest.mark.parametrize("direction", ["ir-to-visible", "visible-to-ir"])
def test_test_sets_equal_the_reference_loops(synth_llcm: Path, direction: str) -> None:
    ds = LLCM(synth_llcm)
    runs = ds.test_runs(TestSettings(trials=10, direction=direction))
    query_side, gallery_side = ("nir", "vis") if direction == "ir-to-visible" else ("vis", "nir")
    assert _as_tuples(runs[0].query) == _norm(reference_test_set(synth_llcm, query_side, None))
    for trial, run in enumerate(runs):
        assert _as_tuples(run.gallery) == _norm(reference_test_set(synth_llcm, gallery_side, trial)), trial
        assert run.transposed is (direction == "visible-to-ir")
    galleries = {tuple(r.path for r in run.gallery) for run in runs}
    assert len(galleries) > 1  # trials draw different galleries


def test_check_data_counts_as_the_reference_builds_them(synth_llcm: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["check-data", "llcm", "--root", str(synth_llcm), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"train_ids", "train_rgb", "train_ir", "test_ids", "directions"} <= set(out)
    vis, nir = (reference_test_set(synth_llcm, s, None) for s in ("vis", "nir"))
    assert out["directions"] == {
        "ir-to-visible": {"query": len(nir), "gallery": len(reference_test_set(synth_llcm, "vis", 0))},
        "visible-to-ir": {"query": len(vis), "gallery": len(reference_test_set(synth_llcm, "nir", 0))},
    }
    train_lines = {side: (synth_llcm / "idx" / f"train_{side}.txt").read_text().split("\n") for side in ("vis", "nir")}
    assert out["train_rgb"] == len([x for x in train_lines["vis"] if x]) and out["train_ir"] == len(
        [x for x in train_lines["nir"] if x])
    test_ids = (synth_llcm / "idx" / "test_id.txt").read_text().strip().split(",")
    assert out["test_ids"] == len(test_ids) and out["train_ids"] == 24 - len(test_ids)
    assert all(isinstance(out[k], int) for k in ("train_ids", "train_rgb", "train_ir", "test_ids"))


def test_synthetic_llcm_is_deterministic_and_has_no_nir_cam3(tmp_path: Path, synth_llcm: Path) -> None:
    a = write_synthetic_llcm(tmp_path / "a", ids=8, seed=5, per_camera=2)
    b = write_synthetic_llcm(tmp_path / "b", ids=8, seed=5, per_camera=2, workers=2)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)
    assert not (synth_llcm / "train_nir" / "cam3").exists() and not (synth_llcm / "test_nir" / "cam3").exists()
    rgb, ir = LLCM(synth_llcm).train()
    assert {r.modality.value for r in rgb} == {"rgb"} and {r.modality.value for r in ir} == {"ir"}
    assert {r.pid for r in rgb} == {r.pid for r in ir}  # every training id in both modalities
    with pytest.raises(UserError, match="not empty"):
        write_synthetic_llcm(a, ids=8)


def _naive_llcm(sim: np.ndarray, q_pids, q_cams, g_pids, g_cams, max_rank: int = 20):
    """The LLCM rules literally, one query at a time: drop the query's own id AND camera; CMC over
    the first occurrence of each gallery id; skip queries without a match."""
    cmcs, aps, inps = [], [], []
    for i in range(len(q_pids)):
        order = sorted(range(len(g_pids)), key=lambda j: (-sim[i, j], j))
        order = [j for j in order if not (g_pids[j] == q_pids[i] and g_cams[j] == q_cams[i])]
        hits = [k + 1 for k, j in enumerate(order) if g_pids[j] == q_pids[i]]
        if not hits:
            continue
        aps.append(np.mean([(n + 1) / r for n, r in enumerate(hits)]))
        inps.append(len(hits) / hits[-1])
        ids = list(dict.fromkeys(g_pids[j] for j in order))
        first = ids.index(q_pids[i]) + 1
        cmcs.append([first <= k for k in range(1, max_rank + 1)])
    return np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(inps)), len(cmcs)


@pytest.mark.parametrize("direction", ["ir-to-visible", "visible-to-ir"])
def test_runs_score_as_the_naive_loop_transposed_or_not(synth_llcm: Path, direction: str) -> None:
    ds = LLCM(synth_llcm)
    settings = TestSettings(trials=3, direction=direction)
    runs = ds.test_runs(settings)
    records = list({r.path: r for run in runs for r in run.query + run.gallery}.values())
    pids, cams = arrays_of(records)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(int(pids.max()) + 1, 8))
    feats = centres[pids] + 0.9 * rng.normal(size=(len(records), 8)) + 0.3 * cams[:, None]
    table = FeatureTable([r.path for r in records], feats)
    result = evaluate_runs(table, runs, ds.rules, ds.protocol_name(settings))
    assert result.protocol == f"llcm/{direction}" and result.details["direction"] == direction
    assert result.details.get("transposed", False) is (direction == "visible-to-ir")
    for run, got in zip(runs, result.runs, strict=True):
        # the reference's VIS-to-IR passes the matrices swapped: sampled NIR images rank all VIS images
        q, g = (run.gallery, run.query) if direction == "visible-to-ir" else (run.query, run.gallery)
        qf, gf = table.rows(q), table.rows(g)
        qf, gf = qf / np.linalg.norm(qf, axis=1, keepdims=True), gf / np.linalg.norm(gf, axis=1, keepdims=True)
        cmc, m_ap, m_inp, valid = _naive_llcm(qf @ gf.T, *arrays_of(q), *arrays_of(g))
        assert got.valid_queries == valid and got.queries == len(q)
        np.testing.assert_allclose(got.cmc, cmc)
        assert got.mAP == pytest.approx(m_ap, rel=1e-5) and got.mINP == pytest.approx(m_inp, rel=1e-5)


def test_evaluate_features_with_the_llcm_protocol(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(1)
    q_pids, g_pids = rng.integers(0, 12, 80), rng.integers(0, 12, 60)
    q_cams, g_cams = rng.integers(1, 10, 80), rng.integers(1, 10, 60)
    centres = rng.normal(size=(12, 16))
    q, g = centres[q_pids] + rng.normal(size=(80, 16)), centres[g_pids] + rng.normal(size=(60, 16))
    np.savez(tmp_path / "f.npz", query_feat=q, gallery_feat=g, query_pid=q_pids, gallery_pid=g_pids,
             query_cam=q_cams, gallery_cam=g_cams)
    assert main(["evaluate", "--features", str(tmp_path / "f.npz"), "--protocol", "llcm", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    qn, gn = q / np.linalg.norm(q, axis=1, keepdims=True), g / np.linalg.norm(g, axis=1, keepdims=True)
    cmc, m_ap, m_inp, valid = _naive_llcm(qn @ gn.T, q_pids, q_cams, g_pids, g_cams)
    assert out["protocol"] == "llcm/features" and out["rules"] == "llcm" and out["valid_queries"] == valid
    assert out["mAP"] == pytest.approx(m_ap, rel=1e-5) and out["mINP"] == pytest.approx(m_inp, rel=1e-5)
    assert out["cmc"] == pytest.approx(cmc.tolist())
    # the same file under SYSU's rules keeps same-camera matches: a different figure
    assert main(["evaluate", "--features", str(tmp_path / "f.npz"), "--protocol", "sysu", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mAP"] != pytest.approx(out["mAP"])


def test_broken_layouts_exit_2_naming_the_file(synth_llcm: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    assert main(["check-data", "llcm", "--root", str(tmp_path)]) == 2
    assert "train_vis is missing" in capsys.readouterr().err
    root = write_synthetic_llcm(tmp_path / "l", ids=8, seed=0, per_camera=1)
    lines = (root / "idx" / "train_nir.txt").read_text().splitlines()
    (root / "idx" / "train_nir.txt").write_text("\n".join([lines[0], "train_nir/0001/x.jpg 0"]) + "\n")
    assert main(["check-data", "llcm", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "train_nir.txt:2: expected a path like train_nir/cam1/0001/<file>" in err and err.count("\n") == 1
    (root / "idx" / "test_id.txt").write_text("a,b\n")
    with pytest.raises(UserError, match="test_id.txt: expected comma-separated integer ids"):
        LLCM(root).test_ids()
    with pytest.raises(UserError, match="directions ir-to-visible, visible-to-ir"):
        LLCM(synth_llcm).test_runs(TestSettings(direction="visible-to-thermal"))


def test_llcm_end_to_end_on_the_command_line(synth_llcm: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """synth, train with configs/llcm.toml (made tiny), evaluate in both directions, report."""
    data = tmp_path / "data"
    assert main(["synth", "llcm", "--out", str(data), "--ids", "12", "--seed", "1", "--per-camera", "2"]) == 0
    run = tmp_path / "run"
    argv = ["train", "--config", "configs/llcm.toml", "--out", str(run), "--no-progress"]
    for o in (f"data.root={data}", f"data.cache_dir={tmp_path / 'cache'}", "model.backbone=tiny",
              "model.pretrained=none", "data.height=48", "data.width=24", "data.pad=2", "data.num_workers=0",
              "train.epochs=1", "train.max_steps_per_epoch=2", "sampler.num_ids=3", "sampler.num_instances=2"):
        argv += ["--set", o]
    assert main(argv) == 0
    capsys.readouterr()
    results = {}
    for direction in ("ir-to-visible", "visible-to-ir"):
        assert main(["evaluate", "--checkpoint", str(run / "last.pt"), "--direction", direction,
                     "--set", "eval.trials=2", "--json"]) == 0
        results[direction] = json.loads(capsys.readouterr().out)
    ir, vis = results["ir-to-visible"], results["visible-to-ir"]
    assert ir["protocol"] == "llcm/ir-to-visible" and vis["protocol"] == "llcm/visible-to-ir"
    assert vis["transposed"] is True and "transposed" not in ir and ir["runs"] == vis["runs"] == 2
    sizes = LLCM(data).summary()["directions"]
    assert ir["queries"] == sizes["ir-to-visible"]["query"]
    assert vis["queries"] == sizes["visible-to-ir"]["gallery"]  # transposed: the sampled NIR images rank
    assert main(["report", str(run), "--out", str(tmp_path / "report.html")]) == 0
    page = (tmp_path / "report.html").read_text()
    assert "llcm/ir-to-visible" in page and (tmp_path / "report_files" / "0_run_ranking.png").is_file()
