from pathlib import Path

import pytest

from msareid.data.manifest import Manifest, read_manifest, write_manifest
from msareid.data.records import Modality, Record
from msareid.errors import UserError


@pytest.fixture
def manifest(tmp_path: Path, image_writer) -> Path:
    rows = ["path,pid,camera,modality,split"]
    for pid in (7, 9):
        for i in range(2):
            image_writer(tmp_path / "rgb" / f"{pid}_{i}.png")
            image_writer(tmp_path / "ir" / f"{pid}_{i}.png")
            rows.append(f"rgb/{pid}_{i}.png,{pid},1,rgb,train")
            rows.append(f"ir/{pid}_{i}.png,{pid},2,ir,train")
    image_writer(tmp_path / "q.png")
    image_writer(tmp_path / "g.png")
    rows += ["q.png,20,2,ir,query", "g.png,20,1,rgb,gallery"]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "data.csv"


def test_reads_splits_with_paths_relative_to_the_manifest(manifest: Path) -> None:
    splits = read_manifest(manifest)
    assert [len(splits[s]) for s in ("train", "query", "gallery")] == [8, 1, 1]
    first = splits["train"][0]
    assert first == Record(str(manifest.parent / "rgb" / "7_0.png"), 7, 1, Modality.RGB)
    rgb, ir = Manifest(manifest).train()
    assert len(rgb) == len(ir) == 4 and {r.modality for r in ir} == {Modality.IR}


def test_summary(manifest: Path) -> None:
    assert Manifest(manifest).summary() == {
        "dataset": "manifest",
        "train": {"ids": 2, "rgb": 4, "ir": 4},
        "query": {"ids": 1, "rgb": 0, "ir": 1},
        "gallery": {"ids": 1, "rgb": 1, "ir": 0},
    }


def test_write_then_read_round_trips(manifest: Path, tmp_path: Path) -> None:
    splits = read_manifest(manifest)
    write_manifest(tmp_path / "copy" / "m.csv", splits)
    assert read_manifest(tmp_path / "copy" / "m.csv") == splits


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("q.png,20,2,thermal,query", r"data\.csv:\d+: modality must be rgb or ir, got 'thermal'"),
        ("q.png,x,2,ir,query", r"data\.csv:\d+: pid and camera must be integers"),
        ("q.png,20,2,ir,test", r"data\.csv:\d+: split must be one of train, query, gallery"),
        ("nope.png,20,2,ir,query", r"data\.csv:\d+: image .*nope\.png does not exist"),
    ],
)
def test_bad_rows_are_named_with_their_line(manifest: Path, row: str, message: str) -> None:
    manifest.write_text(manifest.read_text() + row + "\n")
    with pytest.raises(UserError, match=message):
        read_manifest(manifest)


def test_missing_column(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("path,pid,modality\n")
    with pytest.raises(UserError, match="header lacks column.*camera, split"):
        read_manifest(tmp_path / "m.csv")
