import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from msareid.data.regdb import RegDB
from msareid.data.sources import sysu_summary
from msareid.data.synth_render import make_identity
from msareid.data.synthetic import RegdbSpec, SysuSpec, write_regdb, write_sysu
from msareid.data.sysu import SysuMM01
from msareid.errors import UserError


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_sysu_is_deterministic_for_a_seed_and_worker_count(tmp_path: Path) -> None:
    spec = SysuSpec(ids=8, rgb_images=2, ir_images=2, seed=5)
    a = _digest(write_sysu(tmp_path / "a", spec, workers=1))
    b = _digest(write_sysu(tmp_path / "b", spec, workers=2))
    c = _digest(write_sysu(tmp_path / "c", SysuSpec(ids=8, rgb_images=2, ir_images=2, seed=6)))
    assert a == b != c


def test_sysu_layout_is_the_real_one(synth_sysu: Path) -> None:
    assert sorted(p.name for p in synth_sysu.iterdir()) == [f"cam{i}" for i in range(1, 7)] + ["exp"]
    for f in (synth_sysu / "exp").iterdir():
        assert re.fullmatch(r"\d+(,\d+)*\n", f.read_text()), f
    for img in synth_sysu.glob("cam*/*/*"):
        assert re.fullmatch(r"cam[1-6]/\d{4}/\d{4}\.jpg", str(img.relative_to(synth_sysu)))
    ds = SysuMM01(synth_sysu)
    ids = [ds.ids(s) for s in ("train", "val", "test")]
    assert sorted(sum(ids, [])) == list(range(1, 17))  # a partition of the ids
    summary = sysu_summary(ds, verify=True)
    assert summary["train"]["ids"] == len(ids[0]) + len(ids[1])
    assert summary["test"]["query"] > 0 and summary["valid_query"]["all"] == summary["test"]["query"]


def test_regdb_layout_is_the_real_one(synth_regdb: Path) -> None:
    for side in ("Visible", "Thermal"):
        names = [p.name for p in (synth_regdb / side / "3").iterdir()]
        assert len(names) == 3 and all(re.fullmatch(r"(fe)?male_(front|back)_[vt]_\d{5}_3\.bmp", n) for n in names)
    for k in range(1, 11):
        for name in ("train_visible", "train_thermal", "test_visible", "test_thermal"):
            line = (synth_regdb / "idx" / f"{name}_{k}.txt").read_text().splitlines()[0]
            assert re.fullmatch(r"(Visible|Thermal)/\d+/\S+\.bmp \d+", line)
    assert len(RegDB(synth_regdb, 5).records("test", "thermal")) == 4 * 3


def test_ir_images_are_colourless_and_rgb_images_are_not(synth_sysu: Path) -> None:
    def channel_spread(path: Path) -> float:
        arr = np.asarray(Image.open(path), dtype=np.float32)
        return float(np.abs(arr - arr.mean(axis=2, keepdims=True)).mean())

    ir = [channel_spread(p) for p in synth_sysu.glob("cam[36]/*/*.jpg")]
    rgb = [channel_spread(p) for p in synth_sysu.glob("cam[1245]/*/*.jpg")]
    assert max(ir) < 2.0 < np.median(rgb)


def test_identities_are_consistent_and_distinct() -> None:
    assert make_identity(0, 3) == make_identity(0, 3)
    people = {make_identity(0, pid) for pid in range(1, 50)}
    assert len(people) == 49


def test_identity_is_recognisable_across_modalities_by_shape(tmp_path: Path) -> None:
    """Silhouettes (foreground masks) match across modalities better than across identities."""
    from msareid.data.synth_render import render

    def silhouette(pid: int, cam: int, infrared: bool, i: int) -> np.ndarray:
        rng = np.random.default_rng([0, pid, cam, i])
        img = np.asarray(render(make_identity(0, pid), cam, infrared, (128, 64), rng).convert("L"), np.float32)
        return (img - img.mean()) / (img.std() + 1e-6)

    same, other = [], []
    for pid in range(1, 9):
        rgb = np.mean([silhouette(pid, 1, False, i) for i in range(8)], axis=0)
        for q in range(1, 9):
            ir = np.mean([silhouette(q, 3, True, i) for i in range(8)], axis=0)
            (same if q == pid else other).append(np.abs(np.corrcoef(rgb.ravel(), ir.ravel())[0, 1]))
    assert np.mean(same) > np.mean(other)


def test_too_few_ids_and_non_empty_folder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="too few"):
        write_sysu(tmp_path / "x", SysuSpec(ids=3))
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="is not empty"):
        write_regdb(tmp_path / "y", RegdbSpec(ids=4))
    assert (tmp_path / "y" / "keep.txt").read_text() == "mine"
