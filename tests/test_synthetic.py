import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from msareid.data.regdb import RegDB
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
    summary = ds.summary(verify=True)
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


@pytest.mark.parametrize("modality", ["nir", "thermal"])
def test_identity_is_recognisable_across_modalities_by_shape(modality: str) -> None:
    """Silhouettes (foreground masks) match across modalities better than across identities."""
    from msareid.data.synth_render import render

    def silhouette(pid: int, cam: int, mod: str, i: int) -> np.ndarray:
        rng = np.random.default_rng([0, pid, cam, i])
        img = np.asarray(render(make_identity(0, pid), cam, mod, (128, 64), rng).convert("L"), np.float32)
        return (img - img.mean()) / (img.std() + 1e-6)

    same, other = [], []
    for pid in range(1, 9):
        rgb = np.mean([silhouette(pid, 1, "rgb", i) for i in range(8)], axis=0)
        for q in range(1, 9):
            ir = np.mean([silhouette(q, 3, modality, i) for i in range(8)], axis=0)
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


def test_near_infrared_brightness_comes_from_material_not_colour() -> None:
    """SYSU-MM01's IR cameras see reflected NIR light: garment brightness is only loosely tied to
    visible brightness (unlike the thermal model, where dark garments absorb and look warm), and
    the pattern stays visible against its garment."""
    from msareid.data.synth_render import _luma

    people = [make_identity(0, pid) for pid in range(1, 301)]
    luma = np.array([_luma(p.upper) for p in people])
    nir = np.array([p.nir_upper for p in people])
    heat = np.array([p.heat_upper for p in people])
    assert abs(np.corrcoef(luma, nir)[0, 1]) < 0.4
    assert np.corrcoef(luma, heat)[0, 1] < -0.5
    assert min(abs(p.nir_pattern - p.nir_upper) for p in people) >= 0.18 - 1e-9
    # one visible brightness, many NIR brightnesses: similar colours do not predict the IR look
    similar = np.abs(luma[:, None] - luma[None, :]) < 0.05
    np.fill_diagonal(similar, False)
    assert np.abs(nir[:, None] - nir[None, :])[similar].max() > 0.4


def test_sysu_ir_cameras_render_near_infrared_and_regdb_thermal(tmp_path: Path) -> None:
    """The writers pick each dataset's camera model: the same IR frame differs between them."""
    from msareid.data.synth_render import render

    ident = make_identity(0, 5)
    nir = np.asarray(render(ident, 3, "nir", (96, 48), np.random.default_rng(1)))
    thermal = np.asarray(render(ident, 3, "thermal", (96, 48), np.random.default_rng(1)))
    assert np.abs(nir.astype(float) - thermal).mean() > 5
    with pytest.raises(ValueError, match="modality"):
        render(ident, 3, "x-ray", (96, 48), np.random.default_rng(1))


def test_sysu_with_thermal_ir_cameras_changes_the_ir_images_only(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from msareid.cli import main

    spec = SysuSpec(ids=8, rgb_images=2, ir_images=2, seed=5)
    nir = write_sysu(tmp_path / "nir", spec)
    assert _digest(write_sysu(tmp_path / "default", SysuSpec(ids=8, rgb_images=2, ir_images=2, seed=5,
                                                               ir_camera="nir"))) == _digest(nir)
    assert main(["synth", "sysu", "--out", str(tmp_path / "thermal"), "--ids", "8", "--rgb-images", "2",
                 "--ir-images", "2", "--seed", "5", "--ir-camera", "thermal"]) == 0
    assert "thermal IR cameras" in capsys.readouterr().out
    thermal = tmp_path / "thermal"
    files = sorted(p.relative_to(nir) for p in nir.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(thermal) for p in thermal.rglob("*") if p.is_file())  # one layout
    for rel in files:
        same = (nir / rel).read_bytes() == (thermal / rel).read_bytes()
        assert same == (rel.parts[0] not in ("cam3", "cam6")), rel  # RGB cameras and splits unchanged
        if not same:
            arr = np.asarray(Image.open(thermal / rel), dtype=np.int16)
            assert np.abs(arr[..., 0] - arr[..., 1]).max() <= 8  # colourless (JPEG noise only)
    assert main(["synth", "regdb", "--out", str(tmp_path / "r"), "--ir-camera", "nir"]) == 2
    assert "--ir-camera nir is an option of synth sysu; a synthetic RegDB has its own" in capsys.readouterr().err
    from msareid.data.synthetic import IR_CAMERAS

    assert SysuMM01.synth_ir_cameras == IR_CAMERAS and RegDB.synth_ir_cameras == ()
    with pytest.raises(UserError, match="--ir-camera must be one of nir, thermal"):
        write_sysu(tmp_path / "x", SysuSpec(ids=8, ir_camera="x-ray"))
