import random
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from msareid.data.records import Modality, label_map, labels_of
from msareid.data.sysu import SysuMM01
from msareid.data.sysu_official import RandPerm, load_test_ids
from msareid.errors import UserError


def test_training_set_is_train_plus_val_relabelled_in_id_order(sysu_tree: Path) -> None:
    rgb, ir = SysuMM01(sysu_tree).train()
    assert len(rgb) == 3 + 1 + 2 + 1 and len(ir) == 2 + 2 + 1 + 1
    assert all(r.modality is Modality.RGB and r.camera in (1, 2, 4, 5) for r in rgb)
    assert all(r.modality is Modality.IR and r.camera in (3, 6) for r in ir)
    mapping = label_map(rgb + ir)
    assert mapping == {1: 0, 2: 1, 3: 2}
    assert labels_of(ir, mapping).tolist() == [0, 0, 1, 1, 2, 2]


def test_query_is_every_ir_image_of_the_test_ids_in_order(sysu_tree: Path) -> None:
    query = SysuMM01(sysu_tree).query()
    assert [(r.pid, r.camera) for r in query] == [(4, 3), (4, 3), (4, 6), (5, 3), (5, 3), (6, 3), (6, 6), (6, 6)]
    assert [Path(r.path).name for r in query[:2]] == ["0001.jpg", "0002.jpg"]


@pytest.mark.parametrize(
    ("mode", "shots", "expected"),
    [
        ("all", 1, 3 + 2 + 2),
        ("all", 10, (10 + 3 + 2) + (2 + 1) + (10 + 1)),
        ("indoor", 1, 2 + 1),
        ("indoor", 10, 10 + 3 + 10),
    ],
)
def test_gallery_sizes(sysu_tree: Path, mode: str, shots: int, expected: int) -> None:
    ds = SysuMM01(sysu_tree)
    for trial in range(3):
        gallery = ds.gallery(mode, shots, trial)
        assert len(gallery) == expected
        cams = {"all": (1, 2, 4, 5), "indoor": (1, 2)}[mode]
        assert all(r.camera in cams and r.modality is Modality.RGB for r in gallery)
        assert len({r.path for r in gallery}) == expected  # no image twice


def _reference_agw_gallery(root: Path, mode: str, trial: int) -> list[str]:
    """The reference code's loop, literally: global random.seed(trial), random.choice per folder."""
    import os

    cams = ["cam1", "cam2", "cam4", "cam5"] if mode == "all" else ["cam1", "cam2"]
    ids = (root / "exp" / "test_id.txt").read_text().splitlines()
    ids = ["%04d" % int(y) for y in ids[0].split(",")]  # noqa: UP031 - the reference's own spelling
    state = random.getstate()
    try:
        random.seed(trial)
        files = []
        for pid in sorted(ids):
            for cam in cams:
                img_dir = os.path.join(str(root), cam, pid)
                if os.path.isdir(img_dir):
                    new_files = sorted([img_dir + "/" + i for i in os.listdir(img_dir)])
                    files.append(random.choice(new_files))
        return files
    finally:
        random.setstate(state)


@pytest.mark.parametrize("mode", ["all", "indoor"])
def test_agw_sampler_reproduces_the_reference_loop(sysu_tree: Path, mode: str) -> None:
    ds = SysuMM01(sysu_tree)
    for trial in range(10):
        ours = [r.path for r in ds.gallery(mode, 1, trial, sampler="agw")]
        assert ours == [str(Path(p)) for p in _reference_agw_gallery(sysu_tree, mode, trial)]


def test_agw_sampler_leaves_global_random_state_alone(sysu_tree: Path) -> None:
    random.seed(1234)
    before = random.getstate()
    SysuMM01(sysu_tree).gallery("all", 10, 3)
    assert random.getstate() == before


def test_trials_draw_different_galleries(sysu_tree: Path) -> None:
    ds = SysuMM01(sysu_tree)
    galleries = {tuple(r.path for r in ds.gallery("all", 1, t)) for t in range(10)}
    assert len(galleries) > 1


def test_indoor_valid_queries(sysu_tree: Path) -> None:
    ds = SysuMM01(sysu_tree)
    query = ds.query()
    for mode, expected in (("all", 8), ("indoor", 3 + 3)):
        in_gallery = {r.pid for r in ds.gallery(mode, 1, 0)}
        assert sum(r.pid in in_gallery for r in query) == expected


@pytest.mark.parametrize(("mode", "shots"), [("all", 1), ("all", 10), ("indoor", 1), ("indoor", 10)])
def test_official_sampler_takes_the_first_entries_of_the_authors_permutation(
    sysu_tree: Path, tmp_path: Path, mode: str, shots: int, rand_perm_writer, sysu_counts) -> None:
    perms = rand_perm_writer(tmp_path / "rand_perm_cam.mat", sysu_counts, 7, np.random.default_rng(0))
    perm = RandPerm.load(tmp_path / "rand_perm_cam.mat")
    ds = SysuMM01(sysu_tree)
    cams = (1, 2, 4, 5) if mode == "all" else (1, 2)
    for run in (0, 7):
        expected = []
        for pid in (4, 5, 6):
            for cam in cams:
                n = sysu_counts[pid].get(cam, 0)
                if n:
                    chosen = perms[(cam, pid)][run, :shots].astype(int)
                    expected += [(pid, cam, f"{i:04d}.jpg") for i in chosen]
        got = [(r.pid, r.camera, Path(r.path).name) for r in ds.gallery(mode, shots, run, "official", perm)]
        assert got == expected


def test_official_test_ids_from_test_id_mat(sysu_tree: Path, tmp_path: Path) -> None:
    scipy.io.savemat(str(tmp_path / "test_id.mat"), {"id": np.array([[6, 4]], dtype=np.float64)})
    ids = load_test_ids(tmp_path / "test_id.mat")
    assert ids == [4, 6]
    assert {r.pid for r in SysuMM01(sysu_tree).query(test_ids=ids)} == {4, 6}


def test_mat_file_without_the_variable_is_named(tmp_path: Path) -> None:
    scipy.io.savemat(str(tmp_path / "x.mat"), {"other": np.zeros(3)})
    with pytest.raises(UserError, match=r"x\.mat has no variable 'rand_perm_cam' \(found: other\)"):
        RandPerm.load(tmp_path / "x.mat")


def test_permutation_pointing_past_the_folder_is_an_error(sysu_tree: Path, tmp_path: Path, rand_perm_writer,
                                                          sysu_counts) -> None:
    tree = {pid: {cam: n + 5 for cam, n in cams.items()} for pid, cams in sysu_counts.items()}
    rand_perm_writer(tmp_path / "p.mat", tree, 7, np.random.default_rng(1))
    with pytest.raises(UserError, match="holds .* images"):
        for run in range(10):
            SysuMM01(sysu_tree).gallery("all", 10, run, "official", RandPerm.load(tmp_path / "p.mat"))


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda r: _rmtree(r / "cam4"), r"cam4 is missing"),
        (lambda r: (r / "exp" / "val_id.txt").unlink(), r"val_id\.txt is missing"),
        (lambda r: (r / "exp" / "train_id.txt").write_text("1;2;x\n"), r"train_id\.txt: expected comma-separated"),
        (lambda r: (r / "exp" / "test_id.txt").write_text("\n"), r"test_id\.txt lists no ids"),
        (lambda r: [p.unlink() for p in (r / "cam6" / "0002").iterdir()], r"cam6/0002 holds no images"),
        (lambda r: _rmtree(r / "cam3" / "0001"), r"training id 1 .* has no IR images"),
    ],
)
def test_broken_roots_fail_naming_the_path(sysu_tree: Path, breakage, message: str) -> None:
    breakage(sysu_tree)
    with pytest.raises(UserError, match=message):
        ds = SysuMM01(sysu_tree)
        ds.train()
        ds.query()


def test_an_unlisted_empty_folder_is_never_read(sysu_tree: Path) -> None:
    (sysu_tree / "cam1" / "0009").mkdir()
    assert len(SysuMM01(sysu_tree).train()[0]) == 7


def test_an_id_given_twice_is_kept_once_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from msareid.data.base import read_id_file

    ids = tmp_path / "test_id.txt"
    ids.write_text("3,1,3,2,1\n")
    assert read_id_file(ids) == [3, 1, 2]
    err = capsys.readouterr().err
    assert str(ids) in err and "2 repeated id(s) kept once (1, 3)" in err
