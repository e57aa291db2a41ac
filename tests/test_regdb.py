from pathlib import Path

import pytest

from msareid.data.records import Modality
from msareid.data.regdb import RegDB
from msareid.errors import UserError


def test_trial_split_counts_and_modalities(synth_regdb: Path) -> None:
    for trial in (1, 10):
        ds = RegDB(synth_regdb, trial)
        vis, th = ds.train()
        assert len(vis) == len(th) == 4 * 3
        assert {r.modality for r in vis} == {Modality.RGB} and {r.camera for r in vis} == {1}
        assert {r.modality for r in th} == {Modality.IR} and {r.camera for r in th} == {2}
        assert {r.pid for r in vis} == {r.pid for r in th} == set(range(4))
        assert all(Path(r.path).is_file() for r in vis + th)


def test_train_and_test_persons_are_disjoint(synth_regdb: Path) -> None:
    ds = RegDB(synth_regdb, 2)
    train_folders = {Path(r.path).parent.name for r in ds.train()[0]}
    test_folders = {Path(r.path).parent.name for r in ds.records("test", "visible")}
    assert train_folders.isdisjoint(test_folders) and len(train_folders | test_folders) == 8


def test_trials_differ(synth_regdb: Path) -> None:
    splits = {tuple(r.path for r in RegDB(synth_regdb, k).train()[0]) for k in range(1, 11)}
    assert len(splits) > 1


def test_directions_swap_query_and_gallery(synth_regdb: Path) -> None:
    ds = RegDB(synth_regdb, 1)
    q, g = ds.query_gallery("visible-to-thermal")
    assert {r.modality for r in q} == {Modality.RGB} and {r.modality for r in g} == {Modality.IR}
    q2, g2 = ds.query_gallery("thermal-to-visible")
    assert q2 == g and g2 == q


def test_missing_split_files_say_they_come_with_the_dataset(synth_regdb: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "RegDB"
    shutil.copytree(synth_regdb, root)
    (root / "idx" / "test_thermal_4.txt").unlink()
    with pytest.raises(UserError, match=r"test_thermal_4\.txt is missing: .* come with the dataset"):
        RegDB(root, 4).query_gallery()
    shutil.rmtree(root / "idx")
    with pytest.raises(UserError, match=r"idx is missing"):
        RegDB(root, 1)


def test_malformed_line_and_missing_image_are_named(synth_regdb: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "RegDB"
    shutil.copytree(synth_regdb, root)
    path = root / "idx" / "train_visible_1.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + ["Visible/1/x.bmp"] + lines[2:]) + "\n")
    with pytest.raises(UserError, match=r"train_visible_1\.txt:3: expected '<relative path> <integer label>'"):
        RegDB(root, 1).train()
    path.write_text("Visible/999/none.bmp 0\n")
    with pytest.raises(UserError, match=r"train_visible_1\.txt:1: image .*none\.bmp does not exist"):
        RegDB(root, 1).train()


def test_trial_out_of_range(synth_regdb: Path) -> None:
    with pytest.raises(UserError, match="trial must be 1..10"):
        RegDB(synth_regdb, 11)


def test_split_files_listing_an_image_twice_or_contradicting_labels_warn(synth_regdb: Path, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    import shutil

    from msareid.data.regdb import RegDB

    root = tmp_path / "regdb"
    shutil.copytree(synth_regdb, root)
    assert len(RegDB(root, 1).records("train", "visible")) > 0 and capsys.readouterr().err == ""
    split = root / "idx" / "train_visible_1.txt"
    lines = split.read_text().splitlines()
    first_path, first_label = lines[0].split()
    other = next(i for i, line in enumerate(lines) if line.split()[1] != first_label)
    lines[other] = f"{lines[other].split()[0]} {first_label}"  # another folder's image under the first label
    lines.append(lines[0])  # the same image again
    split.write_text("\n".join(lines) + "\n")
    records = RegDB(root, 1).records("train", "visible")
    err = capsys.readouterr().err
    assert f"{split}: 1 image(s) listed twice, kept once" in err
    assert len(records) == len(lines) - 1 and [r.path for r in records].count(str(root / first_path)) == 1
    assert f"{split}: " in err and "label(s) contradict the folders" in err and "has label 0" in err
