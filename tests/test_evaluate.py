"""The evaluation driver, the npz and official feature files, and ``msareid evaluate``."""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from msareid.cli import main
from msareid.data.base import TestSettings
from msareid.data.records import arrays_of
from msareid.data.regdb import RegDB
from msareid.data.sysu import SysuMM01
from msareid.data.sysu_official import RandPerm
from msareid.eval.driver import FeatureTable, evaluate_runs
from msareid.eval.metrics import evaluate_features

KEYS = {"protocol", "queries", "valid_queries", "cmc", "rank1", "rank5", "rank10", "rank20", "mAP", "mINP"}


def _identity_features(pids: np.ndarray, rng: np.random.Generator, noise: float = 0.8) -> np.ndarray:
    centres = np.random.default_rng(42).normal(size=(int(pids.max()) + 1, 16))
    return centres[pids] + noise * rng.normal(size=(len(pids), 16))


def _write_npz(path: Path, rng: np.random.Generator, **override) -> Path:
    q_pids, g_pids = rng.integers(0, 20, 60), rng.integers(0, 20, 90)
    arrays = {"query_feat": _identity_features(q_pids, rng), "gallery_feat": _identity_features(g_pids, rng),
              "query_pid": q_pids, "gallery_pid": g_pids, "query_cam": rng.choice([3, 6], 60),
              "gallery_cam": rng.choice([1, 2, 4, 5], 90)}
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return path


def test_evaluate_npz_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _write_npz(tmp_path / "f.npz", np.random.default_rng(0))
    assert main(["evaluate", "--features", str(path), "--protocol", "sysu", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert KEYS <= set(out) and len(out["cmc"]) == 20 and out["protocol"] == "sysu/features"
    assert all(0 <= out[k] <= 1 for k in ("rank1", "mAP", "mINP")) and out["rank1"] > 0.3
    d = np.load(path)
    direct = evaluate_features(d["query_feat"], d["gallery_feat"], d["query_pid"], d["query_cam"],
                               d["gallery_pid"], d["gallery_cam"], SysuMM01.rules)
    assert out["mAP"] == pytest.approx(direct.mAP) and out["valid_queries"] == direct.valid_queries
    assert main(["evaluate", "--features", str(path), "--protocol", "regdb", "--metric", "euclidean"]) == 0
    table = capsys.readouterr().out
    assert "protocol: regdb/features" in table and "metric euclidean" in table and "mAP" in table


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"query_pid": None}, "lacks array 'query_pid'"),
        ({"gallery_cam": np.ones(5, dtype=int)}, "'gallery_cam' must be 90 integers"),
        ({"query_feat": np.full((60, 16), np.nan)}, "'query_feat' holds NaN"),
        ({"gallery_feat": np.ones((90, 8))}, "query features have 16 dimensions but gallery features 8"),
        ({"query_feat": np.ones(60)}, "'query_feat' must be a 2-D array of real numbers"),
        ({"query_feat": np.ones((60, 16)) * 1j}, "'query_feat' must be a 2-D array of real numbers"),
        ({"query_feat": np.ones((0, 16)), "query_pid": np.ones(0, dtype=int), "query_cam": np.ones(0, dtype=int)},
         "'query_feat' is empty"),
    ],
)
def test_malformed_npz_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture, override: dict, message: str) -> None:
    path = _write_npz(tmp_path / "bad.npz", np.random.default_rng(1), **override)
    assert main(["evaluate", "--features", str(path), "--protocol", "sysu", "--json"]) == 2
    err = capsys.readouterr().err
    assert message in err and "bad.npz" in err and err.count("\n") == 1


def test_sysu_driver_runs_every_trial_with_its_own_gallery(sysu_tree: Path) -> None:
    ds = SysuMM01(sysu_tree)
    records = ds.query() + ds.records(ds.test_ids(), (1, 2, 4, 5))
    pids, _ = arrays_of(records)
    table = FeatureTable([r.path for r in records], _identity_features(pids, np.random.default_rng(0), 2.0))
    settings = TestSettings("all", 1, trials=10)
    result = evaluate_runs(table, ds.test_runs(settings), ds.rules, ds.protocol_name(settings))
    assert len(result.runs) == 10 and result.protocol == "sysu/all/single-shot/agw"
    assert result.details["sampler"] == "agw" and result.details["rules"] == "sysu"
    for trial, run in enumerate(result.runs):  # each trial equals a direct evaluation of its gallery
        query, gallery = ds.query(), ds.gallery("all", 1, trial)
        direct = evaluate_features(table.rows(query), table.rows(gallery), *arrays_of(query), *arrays_of(gallery),
                                   SysuMM01.rules)
        assert run.mAP == pytest.approx(direct.mAP)
    mean = result.as_dict()
    assert mean["mAP"] == pytest.approx(np.mean([r.mAP for r in result.runs]))
    assert mean["std"]["mAP"] == pytest.approx(np.std([r.mAP for r in result.runs]))
    indoor = evaluate_runs(table, ds.test_runs(TestSettings("indoor", 10, trials=2)), ds.rules, "indoor")
    # id 4: 3 queries; id 6: its cam3 query only has cam2 images indoors, removed by the rule -> 2
    assert indoor.runs[0].valid_queries == 3 + 2 and indoor.runs[0].queries == 8


def test_regdb_driver_directions(synth_regdb: Path) -> None:
    ds = RegDB(synth_regdb, 3)
    q, g = ds.query_gallery()
    recs = q + g
    pids, _ = arrays_of(recs)
    table = FeatureTable([r.path for r in recs], _identity_features(pids, np.random.default_rng(0), 0.1))
    for direction in ("visible-to-thermal", "thermal-to-visible"):
        settings = TestSettings(direction=direction)
        r = evaluate_runs(table, ds.test_runs(settings), ds.rules, ds.protocol_name(settings))
        assert r.runs[0].queries == 12 and r.runs[0].cmc[0] == 1.0 and direction in r.protocol


@pytest.fixture
def official_files(tmp_path: Path, rand_perm_writer, sysu_counts) -> dict:
    """NAME_cam<c>.mat, rand_perm_cam.mat and test_id.mat in the authors' layout for the hand-built tree."""
    rng, dims = np.random.default_rng(3), 8
    n_ids = 7
    feats = {}
    for cam in range(1, 7):
        cells = np.empty((1, n_ids), dtype=object)
        for pid in range(1, n_ids + 1):
            n = sysu_counts.get(pid, {}).get(cam, 0)
            rows = _identity_features(np.full(n, pid), rng, 1.5) if n else np.zeros((0, 0))
            cells[0, pid - 1] = rows[:, :dims] if n else rows
            feats[(cam, pid)] = cells[0, pid - 1]
        scipy.io.savemat(str(tmp_path / f"net_cam{cam}.mat"), {"feature": cells})
    perms = rand_perm_writer(tmp_path / "rand_perm_cam.mat", sysu_counts, n_ids, rng)
    scipy.io.savemat(str(tmp_path / "test_id.mat"), {"id": np.array([[4, 5, 6]], dtype=np.float64)})
    return {"feats": feats, "perms": perms}


def test_official_mode_equals_our_driver_on_the_same_images(
    sysu_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture, official_files: dict
) -> None:
    files = official_files
    argv = ["evaluate", "--official-sysu", str(tmp_path), "--name", "net",
            "--perm", str(tmp_path / "rand_perm_cam.mat"), "--test-ids", str(tmp_path / "test_id.mat"),
            "--mode", "all", "--shots", "1", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert KEYS <= set(out) and len(out["per_run"]) == 10 and out["protocol"] == "sysu-official/all/single-shot"
    assert set(out["per_run"][0]) >= {"cmc", "rank1", "mAP", "mINP"}
    # the same features addressed by image path through the dataset reader and the official sampler
    ds = SysuMM01(sysu_tree)
    paths, rows = [], []
    for (cam, pid), feat in files["feats"].items():
        paths += list(ds.files(cam, pid))
        rows += list(feat)
    runs = ds.test_runs(TestSettings("all", 1, 10, "official"), perm=RandPerm.load(tmp_path / "rand_perm_cam.mat"))
    ours = evaluate_runs(FeatureTable(paths, np.array(rows)), runs, ds.rules, "official")
    for theirs, mine in zip(out["per_run"], ours.runs, strict=True):
        assert theirs["mAP"] == pytest.approx(mine.mAP) and theirs["cmc"] == pytest.approx(mine.cmc.tolist())


def test_official_mode_missing_variable_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                official_files: dict) -> None:
    scipy.io.savemat(str(tmp_path / "net_cam3.mat"), {"feats": np.zeros(3)})
    argv = ["evaluate", "--official-sysu", str(tmp_path), "--name", "net",
            "--perm", str(tmp_path / "rand_perm_cam.mat"), "--test-ids", str(tmp_path / "test_id.mat")]
    assert main(argv) == 2
    assert "net_cam3.mat has no variable 'feature' (found: feats)" in capsys.readouterr().err
    assert main(argv[:5]) == 2
    assert "--official-sysu needs --perm, --test-ids" in capsys.readouterr().err
