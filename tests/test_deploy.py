"""Feature extraction, search, re-ranking and ONNX export."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from msareid.cli import main
from msareid.eval.gallery import FeatureFile, save_features, top_k
from msareid.eval.rerank import k_reciprocal_rerank, rerank_distance


def _literal_rerank(dist: np.ndarray, n_q: int, k1: int, k2: int, lam: float) -> np.ndarray:
    """Zhong et al. (2017), step by step with Python sets and loops."""
    n = len(dist)
    d = [[dist[i][j] / max(dist[i]) for j in range(n)] for i in range(n)]
    rank = [sorted(range(n), key=lambda j, i=i: (d[i][j], j)) for i in range(n)]

    def recip(i: int, k: int) -> set:
        return {j for j in rank[i][: k + 1] if i in rank[j][: k + 1]}

    v = [[0.0] * n for _ in range(n)]
    for i in range(n):
        r = recip(i, k1)
        expanded = set(r)
        for c in r:
            rc = recip(c, int(np.around(k1 / 2)))
            if len(rc & r) > 2 / 3 * len(rc):
                expanded |= rc
        total = sum(np.exp(-d[i][j]) for j in expanded)
        for j in expanded:
            v[i][j] = np.exp(-d[i][j]) / total
    if k2 > 1:
        v = [[sum(v[m][j] for m in rank[i][:k2]) / k2 for j in range(n)] for i in range(n)]
    out = np.zeros((n_q, n - n_q))
    for i in range(n_q):
        for g in range(n_q, n):
            inter = sum(min(v[i][j], v[g][j]) for j in range(n))
            out[i, g - n_q] = (1 - lam) * (1 - inter / (2 - inter)) + lam * d[i][g]
    return out


@pytest.mark.parametrize("seed", range(3))
def test_rerank_equals_a_literal_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(14, 3))
    dist = ((points[:, None] - points[None]) ** 2).sum(-1)  # hand-made: squared distances of random points
    ours = rerank_distance(dist.astype(np.float32), 5, k1=4, k2=2, lambda_value=0.3)
    np.testing.assert_allclose(ours, _literal_rerank(dist, 5, 4, 2, 0.3), atol=1e-5)


def test_rerank_from_features_uses_squared_distances() -> None:
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(4, 8)), rng.normal(size=(9, 8))
    feats = np.concatenate([q, g])
    dist = ((feats[:, None] - feats[None]) ** 2).sum(-1)
    np.testing.assert_allclose(k_reciprocal_rerank(q, g, 5, 3, 0.3), rerank_distance(dist, 4, 5, 3, 0.3), atol=1e-5)


def test_chunked_top_k_equals_a_full_sort() -> None:
    rng = np.random.default_rng(1)
    g = rng.normal(size=(1000, 16)).astype(np.float32)
    g[500] = g[10]  # a tie: the lower index first
    q = np.stack([g[10], rng.normal(size=16).astype(np.float32)])
    ids, scores = top_k(q, g, k=7, chunk=97)
    full = q @ g.T
    for row in range(2):
        expected = np.lexsort((np.arange(1000), -full[row]))[:7]
        assert ids[row].tolist() == expected.tolist()
        np.testing.assert_allclose(scores[row], full[row, expected], rtol=1e-6)


def test_feature_file_memory_maps_its_features(tmp_path: Path) -> None:
    feat = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    save_features(tmp_path / "f.npz", feat, [f"{i}.jpg" for i in range(50)], np.arange(50), np.ones(50), ["ir"] * 50)
    ff = FeatureFile(tmp_path / "f.npz")
    assert isinstance(ff.feat, np.memmap) and ff.dim == 8
    assert ff.feat.ctypes.data % 64 == 0  # aligned, so BLAS reads it in place
    np.testing.assert_array_equal(np.asarray(ff.feat), feat)
    assert ff.paths[3] == "3.jpg" and ff.modality[0] == "ir"
    # a file written by plain np.savez (members not aligned) is read and searched just the same
    np.savez(tmp_path / "plain.npz", feat=feat, paths=ff.paths, pid=ff.pid, cam=ff.cam, modality=ff.modality)
    plain = FeatureFile(tmp_path / "plain.npz")
    assert top_k(feat[:3], plain.feat, 4, chunk=7)[0].tolist() == top_k(feat[:3], feat, 4)[0].tolist()


def test_extract_a_folder_and_a_manifest(tiny_checkpoint: Path, synth_sysu: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.npz"
    assert main(["extract", "--checkpoint", str(tiny_checkpoint), "--images", str(synth_sysu / "cam1"),
                 "--out", str(out)]) == 0
    ff = FeatureFile(out)
    n = len(list((synth_sysu / "cam1").rglob("*.jpg")))
    assert ff.feat.shape == (n, 256) and set(ff.modality) == {"rgb"}
    np.testing.assert_allclose(np.linalg.norm(ff.feat, axis=1), 1.0, rtol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == ["g.npz"]  # the on-disk scratch features are gone
    from msareid.data.manifest import write_manifest
    from msareid.data.sysu import SysuMM01

    ds = SysuMM01(synth_sysu)
    write_manifest(tmp_path / "m.csv", {"query": ds.query()[:5], "gallery": ds.gallery("all", 1, 0)})
    assert main(["extract", "--checkpoint", str(tiny_checkpoint), "--images", str(tmp_path / "m.csv"),
                 "--out", str(tmp_path / "m.npz"), "--flip"]) == 0
    m = FeatureFile(tmp_path / "m.npz")
    assert m.pid[:5].tolist() == [r.pid for r in ds.query()[:5]] and m.modality[0] == "ir"


def test_feature_extractor_accepts_paths_pil_arrays_and_tensors(tiny_checkpoint: Path, synth_sysu: Path) -> None:
    import msareid

    fx = msareid.FeatureExtractor(tiny_checkpoint)
    path = sorted((synth_sysu / "cam1").rglob("*.jpg"))[0]
    from msareid.data.cache import load_image

    arr = load_image(str(path), fx.height, fx.width).copy()
    by_path = fx(str(path))
    for other in (Image.fromarray(arr), arr, torch.from_numpy(arr).permute(2, 0, 1),
                  torch.from_numpy(arr).permute(2, 0, 1).float() / 255):
        np.testing.assert_allclose(fx(other), by_path, atol=1e-5)
    assert fx([str(path), arr]).shape == (2, fx.dim)


def test_search_ranks_the_gallery(tiny_checkpoint: Path, synth_sysu: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture) -> None:
    gallery = tmp_path / "g.npz"
    main(["extract", "--checkpoint", str(tiny_checkpoint), "--images", str(synth_sysu / "cam1"), "--out", str(gallery)])
    query = str(sorted((synth_sysu / "cam3").rglob("*.jpg"))[0])
    capsys.readouterr()
    argv = ["search", "--checkpoint", str(tiny_checkpoint), "--gallery", str(gallery), "--query", query,
            "--topk", "5", "--json", "--html", str(tmp_path / "s.html")]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    matches = out["results"][0]["matches"]
    assert len(matches) == 5 and [m["rank"] for m in matches] == [1, 2, 3, 4, 5]
    assert all(a["score"] >= b["score"] for a, b in zip(matches, matches[1:]))
    page = (tmp_path / "s.html").read_text()
    assert page.count("data:image/jpeg;base64,") == 6  # the query and its 5 matches
    assert main(argv[:-2] + ["--index", "faiss"]) == 0  # faiss is installed with the dev extra
    faiss_matches = json.loads(capsys.readouterr().out)["results"][0]["matches"]
    assert [m["index"] for m in faiss_matches] == [m["index"] for m in matches]


def test_search_bad_inputs_exit_2(tiny_checkpoint: Path, synth_sysu: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture) -> None:
    save_features(tmp_path / "d8.npz", np.ones((3, 8), np.float32), ["a", "b", "c"], np.zeros(3), np.zeros(3),
                  ["rgb"] * 3)
    query = str(sorted((synth_sysu / "cam3").rglob("*.jpg"))[0])
    base = ["search", "--checkpoint", str(tiny_checkpoint), "--query"]
    assert main(base + [query, "--gallery", str(tmp_path / "d8.npz")]) == 2
    assert "holds 8-d features but" in capsys.readouterr().err
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    save_features(tmp_path / "d256.npz", np.ones((3, 256), np.float32), ["a", "b", "c"], np.zeros(3),
                  np.zeros(3), ["rgb"] * 3)
    assert main(base + [str(tmp_path / "bad.jpg"), "--gallery", str(tmp_path / "d256.npz")]) == 2
    err = capsys.readouterr().err
    assert "bad.jpg cannot be decoded" in err and err.count("\n") == 1
    other = tmp_path / "other.pt"
    ckpt = torch.load(tiny_checkpoint, weights_only=True)
    ckpt["config"]["model"]["backbone"] = "resnet18"  # weights of one architecture, config of another
    torch.save(ckpt, other)
    assert main(["search", "--checkpoint", str(other), "--query", query, "--gallery", str(tmp_path / "d256.npz")]) == 2
    err = capsys.readouterr().err
    assert "does not match its own config" in err and err.count("\n") == 1


def test_onnx_export_matches_pytorch(tiny_checkpoint: Path, tmp_path: Path) -> None:
    import onnxruntime

    from msareid.inference import load_trained

    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--format", "onnx", "--out",
                 str(tmp_path / "m.onnx")]) == 0
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    model, config, _ = load_trained(tiny_checkpoint)
    for batch in (1, 5):  # the batch size is dynamic
        x = np.random.default_rng(batch).normal(size=(batch, 3, config.data.height, config.data.width))
        x = x.astype(np.float32)
        bnneck, pooled = session.run(["bnneck", "pooled"], {"images": x})
        with torch.no_grad():
            ref = model(torch.from_numpy(x))
        np.testing.assert_allclose(bnneck, ref.bnneck.numpy(), atol=1e-4)
        np.testing.assert_allclose(pooled, ref.pooled.numpy(), atol=1e-4)


def test_evaluate_with_rerank_names_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 16))
    qp, gp = rng.integers(0, 6, 30), rng.integers(0, 6, 40)
    np.savez(tmp_path / "f.npz", query_feat=centres[qp] + rng.normal(size=(30, 16)),
             gallery_feat=centres[gp] + rng.normal(size=(40, 16)), query_pid=qp, gallery_pid=gp,
             query_cam=np.full(30, 3), gallery_cam=np.full(40, 1))
    assert main(["evaluate", "--features", str(tmp_path / "f.npz"), "--protocol", "regdb", "--rerank", "--json",
                 "--k1", "5", "--k2", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rerank"] == "k-reciprocal (k1 5, k2 3, lambda 0.3)" and 0 < out["mAP"] <= 1


def test_evaluate_a_checkpoint_on_a_manifest(tiny_checkpoint: Path, synth_sysu: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    from msareid.data.manifest import write_manifest
    from msareid.data.sysu import SysuMM01

    ds = SysuMM01(synth_sysu)
    write_manifest(tmp_path / "m.csv", {"query": ds.query(), "gallery": ds.gallery("all", 1, 0)})
    assert main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--dataset", "manifest", "--root",
                 str(tmp_path / "m.csv"), "--json", "--rerank"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["protocol"] == "manifest/m.csv" and out["queries"] == len(ds.query()) and "rerank" in out
    write_manifest(tmp_path / "train_only.csv", {"train": ds.train()[0]})
    assert main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--dataset", "manifest", "--root",
                 str(tmp_path / "train_only.csv")]) == 2
    assert "needs rows with split query and split gallery" in capsys.readouterr().err


def test_evaluate_a_checkpoint_with_the_official_sampler(tiny_checkpoint: Path, synth_sysu: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture, rand_perm_writer) -> None:
    tree = {}
    for cam_dir in synth_sysu.glob("cam*"):
        for person in cam_dir.iterdir():
            tree.setdefault(int(person.name), {})[int(cam_dir.name[3:])] = len(list(person.iterdir()))
    rand_perm_writer(tmp_path / "rand_perm_cam.mat", tree, max(tree), np.random.default_rng(0))
    argv = ["evaluate", "--checkpoint", str(tiny_checkpoint), "--dataset", "sysu", "--root", str(synth_sysu),
            "--sampler", "official", "--perm", str(tmp_path / "rand_perm_cam.mat"), "--mode", "indoor",
            "--shots", "10", "--trials", "3", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["protocol"] == "sysu/indoor/multi-shot/official" and out["trials"] == 3
    assert main(argv[:9] + ["--json"]) == 2  # the official sampler without its permutations
    assert "needs eval.perm" in capsys.readouterr().err


def test_report_of_a_regdb_run(synth_regdb: Path, tmp_path: Path) -> None:
    from msareid.engine import train
    from msareid.recipes import load_config

    cfg = load_config("configs/tiny.toml", [
        "data.name=regdb", f"data.root={synth_regdb}", "data.trial=2", f"data.cache_dir={tmp_path / 'c'}",
        "data.height=32", "data.width=16", "train.epochs=1", "train.max_steps_per_epoch=2",
        "sampler.num_ids=2", "sampler.num_instances=2"])
    train(cfg, tmp_path / "run", progress=False)
    assert main(["report", str(tmp_path / "run")]) == 0
    page = (tmp_path / "run" / "report.html").read_text()
    assert "regdb/trial2/visible-to-thermal" in page and "<td>MSA</td>" in page
