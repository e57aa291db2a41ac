"""Bad input and faults: one clear line and exit code 2, nothing written lost or left broken.

Kinds covered: file-system errors on outputs (an existing folder or file where a file or folder
is wanted, an injected full disk), text files that are not UTF-8, broken feature files, values
out of range at the command line and in configs, silently wrong results (16-bit images, an
``--out`` not written, zero valid queries, NaN scores), integrity (a refused resume, broken cache
files, temporary files of killed processes, the log of a run killed before its first checkpoint)
and the data-hygiene warnings.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from msareid.cli import main
from msareid.data.cache import ImageCache, load_image
from msareid.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def _one_line_error(capsys: pytest.CaptureFixture, *fragments: str) -> str:
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if not x.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("msareid "), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def _npz(path: Path, **override: object) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"query_feat": rng.normal(size=(6, 4)), "gallery_feat": rng.normal(size=(8, 4)),
              "query_pid": np.array([1, 1, 2, 2, 3, 3]), "gallery_pid": np.array([1, 2, 3, 4, 1, 2, 3, 4]),
              "query_cam": np.full(6, 3), "gallery_cam": np.array([1, 1, 1, 1, 4, 4, 4, 4])}
    arrays.update(override)
    np.savez(path, **arrays)
    return path


def test_output_paths_that_cannot_be_written(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    feats = _npz(tmp_path / "f.npz")
    folder = tmp_path / "a_folder"
    folder.mkdir()
    assert main(["evaluate", "--features", str(feats), "--protocol", "sysu", "--out", str(folder)]) == 2
    _one_line_error(capsys, "a_folder")
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    assert main(["synth", "sysu", "--out", str(a_file), "--ids", "6"]) == 2
    _one_line_error(capsys, "a_file")
    assert a_file.read_text() == "mine"
    assert main(["evaluate", "--features", str(feats), "--protocol", "sysu", "--out", str(a_file / "r.json")]) == 2
    _one_line_error(capsys, "a_file")


def test_a_full_disk_is_a_clear_error_and_leaves_no_temporary(synth_sysu: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from msareid.data.sysu import SysuMM01

    paths = [r.path for r in SysuMM01(synth_sysu).train()[0]]
    full = shutil.disk_usage(tmp_path)._replace(free=1000)
    monkeypatch.setattr("msareid.data.cache.shutil.disk_usage", lambda _: full)
    with pytest.raises(UserError, match="GiB are free; free some space or put the cache on another disk"):
        ImageCache.build(paths, 32, 16, tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())
    monkeypatch.undo()  # the space check passes; the disk fills up when the blocks are reserved

    def no_blocks(fd: int, offset: int, length: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("msareid.fileio.os.posix_fallocate", no_blocks)
    with pytest.raises(OSError, match="No space left on device .reserving"):
        ImageCache.build(paths, 32, 16, tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())  # no temporary, no SIGBUS later

    def enospc(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device", str(tmp_path / "r.json"))

    monkeypatch.setattr("msareid.fileio.os.replace", enospc)
    feats = _npz(tmp_path / "f.npz")
    assert main(["evaluate", "--features", str(feats), "--protocol", "sysu", "--out", str(tmp_path / "r.json")]) == 2
    assert not list(tmp_path.glob(".r.json*")) and not (tmp_path / "r.json").exists()


def test_text_files_in_another_encoding(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "latin1.toml"
    cfg.write_bytes('[train]\nepochs = 3 # époques\n'.encode("latin-1"))
    assert main(["config", "--config", str(cfg)]) == 2
    _one_line_error(capsys, "latin1.toml", "not UTF-8")
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("path,pid,camera,modality,split\nimagé.jpg,1,1,rgb,train\n".encode("latin-1"))
    assert main(["check-data", "manifest", "--root", str(manifest)]) == 2
    _one_line_error(capsys, "m.csv", "not UTF-8")


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", b"\x93NUMPY"])
def test_broken_feature_files(tmp_path: Path, capsys: pytest.CaptureFixture, content: bytes) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(content)
    assert main(["evaluate", "--features", str(bad), "--protocol", "sysu"]) == 2
    _one_line_error(capsys, "bad.npz")
    truncated = tmp_path / "cut.npz"
    truncated.write_bytes(_npz(tmp_path / "f.npz").read_bytes()[:300])
    assert main(["evaluate", "--features", str(truncated), "--protocol", "sysu"]) == 2
    _one_line_error(capsys, "cut.npz")


def test_values_out_of_range(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for argv in (["search", "--checkpoint", "x.pt", "--gallery", "g.npz", "--query", "q.jpg", "--topk", "0"],
                 ["search", "--checkpoint", "x.pt", "--gallery", "g.npz", "--query", "q.jpg", "--topk", "-3"],
                 ["extract", "--checkpoint", "x.pt", "--images", "d", "--out", "o.npz", "--batch-size", "0"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert "expected a positive integer" in capsys.readouterr().err
    feats = _npz(tmp_path / "f.npz")
    assert main(["evaluate", "--checkpoint", str(feats), "--device", "gpu7"]) == 2
    _one_line_error(capsys, "unknown device 'gpu7'")
    for override, fragment in (("train.lr=nan", "train.lr: expected a finite number"),
                               ("train.threads=-1", "train.threads: expected 0 or more"),
                               ("loss.beta=inf", "loss.beta: expected a finite number")):
        assert main(["config", "--set", override]) == 2
        _one_line_error(capsys, fragment)


def test_high_bit_depth_images_are_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = (np.linspace(0, 65535, 16 * 8).reshape(16, 8)).astype(np.uint16)
    path = tmp_path / "thermal16.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    img = load_image(str(path), 16, 8)
    assert img.dtype == np.uint8 and img.min() == 0 and img.max() == 255
    assert 100 < img.mean() < 155  # a ramp, not an all-white frame


def test_evaluate_writes_out_and_refuses_zero_valid_queries(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    feats = _npz(tmp_path / "f.npz")
    assert main(["evaluate", "--features", str(feats), "--protocol", "sysu", "--out", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["protocol"] == "sysu/features"
    capsys.readouterr()
    none = _npz(tmp_path / "none.npz", gallery_pid=np.arange(10, 18))
    assert main(["evaluate", "--features", str(none), "--protocol", "sysu"]) == 2
    _one_line_error(capsys, "no query has a true match")


def test_search_refuses_non_finite_and_foreign_galleries(tiny_checkpoint: Path, synth_sysu: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    from msareid.eval.gallery import FeatureFile, save_features

    gallery = tmp_path / "g.npz"
    assert main(["extract", "--checkpoint", str(tiny_checkpoint), "--images", str(synth_sysu / "cam1"),
                 "--out", str(gallery)]) == 0
    g = FeatureFile(gallery)
    assert len(g.model_id) == 16
    query = sorted((synth_sysu / "cam3").rglob("*.jpg"))[0]
    feat = np.array(g.feat)
    feat[2] = np.nan
    bad = save_features(tmp_path / "nan.npz", feat, list(g.paths), g.pid, g.cam, list(g.modality), g.model_id)
    capsys.readouterr()
    assert main(["search", "--checkpoint", str(tiny_checkpoint), "--gallery", str(bad), "--query", str(query),
                 "--json"]) == 2
    _one_line_error(capsys, "gallery feature 2 holds NaN")
    foreign = save_features(tmp_path / "foreign.npz", np.array(g.feat), list(g.paths), g.pid, g.cam,
                            list(g.modality), "0123456789abcdef")
    assert main(["search", "--checkpoint", str(tiny_checkpoint), "--gallery", str(foreign), "--query", str(query),
                 "--json"]) == 0
    out = capsys.readouterr()
    json.loads(out.out)
    assert "extracted by another model (0123456789abcdef)" in out.err
    complex_file = save_features(tmp_path / "c.npz", np.array(g.feat), list(g.paths), g.pid, g.cam,
                                 list(g.modality))
    assert FeatureFile(complex_file).model_id == ""


def test_a_refused_resume_changes_nothing(tiny_checkpoint: Path, capsys: pytest.CaptureFixture) -> None:
    import shutil

    run = tiny_checkpoint.parent.parent / "refused"
    shutil.copytree(tiny_checkpoint.parent, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".msareid.lock"}
    assert main(["train", "--resume", str(run), "--set", "model.backbone=resnet18", "--set", "train.epochs=2",
                 "--no-progress"]) == 2
    _one_line_error(capsys, "does not fit the model of this config")
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".msareid.lock"}
    assert after == before  # config.toml, last.pt and metrics.jsonl as they were (the lock says who wrote last)


def test_zero_byte_checkpoint_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "last.pt").write_bytes(b"")
    assert main(["evaluate", "--checkpoint", str(tmp_path / "last.pt")]) == 2
    _one_line_error(capsys, "last.pt", "truncated or not a msareid checkpoint")


def test_broken_cache_files_are_rebuilt_and_stale_temporaries_removed(synth_sysu: Path, tmp_path: Path) -> None:
    from msareid.data.sysu import SysuMM01

    paths = [r.path for r in SysuMM01(synth_sysu).train()[0]][:12]
    good = ImageCache.build(paths, 32, 16, tmp_path)
    reference = np.array(good.array)
    target = good.path
    target.write_bytes(b"")  # zero bytes
    assert np.array_equal(ImageCache.build(paths, 32, 16, tmp_path).array, reference)
    data = bytearray(target.read_bytes())
    data[-100:] = bytes(100)  # damaged in place, same size
    target.write_bytes(bytes(data))
    assert np.array_equal(ImageCache.build(paths, 32, 16, tmp_path).array, reference)
    stale = tmp_path / f".{target.name}.999999.tmp"  # no process 999999: left by a killed build
    stale.write_bytes(b"x" * 100)
    live = tmp_path / f".other.npy.{os.getppid()}.tmp"  # a build in progress in a live process
    live.write_bytes(b"x")
    target.unlink()
    ImageCache.build(paths, 32, 16, tmp_path)
    assert not stale.exists() and live.exists()


def test_a_new_run_does_not_append_to_a_dead_runs_log(synth_sysu: Path, tmp_path: Path) -> None:
    from msareid.engine import train
    from msareid.recipes import load_config

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"event": "start", "epoch": 0}\n')  # killed before its checkpoint
    (run / ".last.pt.999999.tmp").write_bytes(b"half a checkpoint")
    cfg = load_config("configs/tiny.toml", [f"data.root={synth_sysu}", f"data.cache_dir={tmp_path / 'c'}",
                                            "data.height=32", "data.width=16", "train.epochs=1",
                                            "train.max_steps_per_epoch=1", "sampler.num_ids=3",
                                            "sampler.num_instances=2"])
    train(cfg, run, progress=False)
    events = [json.loads(x)["event"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert events.count("start") == 1 and events[-1] == "end"
    assert not (run / ".last.pt.999999.tmp").exists()


def test_data_hygiene_warnings(tmp_path: Path, capsys: pytest.CaptureFixture, sysu_tree_maker) -> None:
    root = sysu_tree_maker(tmp_path / "sysu", splits={"train": [2, 1], "val": [3], "test": [6, 4, 5, 1]})
    assert main(["check-data", "sysu", "--root", str(root)]) == 0
    assert "1 id(s) are in both the training and the test split" in capsys.readouterr().err
    (tmp_path / "m").mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 16)).save(tmp_path / "m" / name)
    Image.new("RGB", (8, 16)).save(tmp_path / "outside.png")
    manifest = tmp_path / "m" / "list.csv"
    manifest.write_text("\ufeffpath,pid,camera,modality,split\na.png,1,1,rgb,train\nb.png,1,3,ir,train\n"
                        "a.png,1,1,rgb,train\n../outside.png,2,3,ir,query\nb.png,2,1,rgb,gallery\n",
                        encoding="utf-8")
    assert main(["check-data", "manifest", "--root", str(manifest)]) == 0
    err = capsys.readouterr().err
    assert "1 duplicate row(s) left out, line(s) 4 (= 2)" in err
    assert "1 relative image path(s) lead outside" in err


def test_debug_before_or_after_the_subcommand_shows_the_traceback(capsys: pytest.CaptureFixture) -> None:
    for argv in (["--debug", "config", "--set", "train.lr=nan"], ["config", "--set", "train.lr=nan", "--debug"]):
        with pytest.raises(UserError, match="finite"):
            main(argv)


def test_a_cache_build_killed_midway_leaves_nothing_that_breaks_the_next(synth_sysu: Path, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from msareid.data.sysu import SysuMM01

    paths = [r.path for r in SysuMM01(synth_sysu).train()[0]] * 60  # long enough to be killed mid-build
    listing = tmp_path / "paths.json"
    listing.write_text(json.dumps(paths))
    code = ("import json, sys; from msareid.data.cache import ImageCache; "
            f"ImageCache.build(json.load(open({str(listing)!r})), 96, 48, {str(tmp_path / 'cache')!r}, threads=1)")
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 60
    while not list((tmp_path / "cache").glob(".*.tmp")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert list((tmp_path / "cache").glob(".*.tmp"))  # the killed build left its temporary file
    cache = ImageCache.build(paths[:5], 96, 48, tmp_path / "cache")  # the next build of any list cleans up
    assert len(cache) == 5 and not list((tmp_path / "cache").glob(".*.tmp"))


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / "ro"))

    monkeypatch.setattr("msareid.fileio.Path.mkdir", refuse)
    feats = _npz(tmp_path / "f.npz")
    out = tmp_path / "ro" / "r.json"
    assert main(["evaluate", "--features", str(feats), "--protocol", "sysu", "--out", str(out)]) == 2
    _one_line_error(capsys, "Permission denied", "check the permissions")
