"""Shared fixtures: hand-built trees in the real layouts and small synthetic datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from msareid.data.synthetic import RegdbSpec, SysuSpec, write_regdb, write_sysu

# A hand-built SYSU-MM01 tree: {pid: {camera: number of images}} and the split files.
SYSU_TREE = {
    1: {1: 3, 3: 2, 4: 1},
    2: {2: 2, 6: 2},
    3: {5: 1, 3: 1, 6: 1},
    4: {1: 12, 2: 3, 3: 2, 4: 2, 6: 1},
    5: {4: 2, 5: 1, 3: 2},  # no indoor camera: its queries have no match in indoor mode
    6: {2: 11, 3: 1, 6: 2, 5: 1},
}
SYSU_SPLITS = {"train": [2, 1], "val": [3], "test": [6, 4, 5]}


def write_image(path: Path, value: int = 0, size: tuple[int, int] = (8, 16)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((size[1], size[0], 3), value % 256, dtype=np.uint8)
    Image.fromarray(arr).save(path)


def make_sysu_tree(root: Path, tree: dict = SYSU_TREE, splits: dict = SYSU_SPLITS) -> Path:
    for cam in range(1, 7):
        (root / f"cam{cam}").mkdir(parents=True, exist_ok=True)
    for pid, cams in tree.items():
        for cam, n in cams.items():
            for i in range(1, n + 1):
                write_image(root / f"cam{cam}" / f"{pid:04d}" / f"{i:04d}.jpg", value=pid * 10 + i)
    (root / "exp").mkdir(exist_ok=True)
    for split, ids in splits.items():
        (root / "exp" / f"{split}_id.txt").write_text(",".join(map(str, ids)) + "\n")
    return root


@pytest.fixture
def sysu_tree_maker():
    """``make_sysu_tree`` for tests that build their own hand-made tree (e.g. other splits)."""
    return make_sysu_tree


@pytest.fixture
def sysu_tree(tmp_path: Path) -> Path:
    return make_sysu_tree(tmp_path / "SYSU-MM01")


@pytest.fixture(scope="session")
def synth_sysu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic SYSU-MM01, shared by the tests that only read it."""
    return write_sysu(tmp_path_factory.mktemp("synth") / "sysu", SysuSpec(ids=16, rgb_images=4, ir_images=4))


@pytest.fixture(scope="session")
def synth_regdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_regdb(tmp_path_factory.mktemp("synth") / "regdb", RegdbSpec(ids=8, images=3))


@pytest.fixture(scope="session")
def tiny_checkpoint(synth_sysu: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny MSA model trained for a few steps on the synthetic set: RUN/last.pt."""
    from msareid.config import load_config
    from msareid.engine import train

    tmp = tmp_path_factory.mktemp("tiny_run")
    cfg = load_config("configs/tiny.toml", [
        f"data.root={synth_sysu}", f"data.cache_dir={tmp / 'cache'}", "data.height=32", "data.width=16",
        "train.epochs=1", "train.max_steps_per_epoch=3", "sampler.num_ids=3", "sampler.num_instances=2",
    ])
    train(cfg, tmp / "run", progress=False)
    return tmp / "run" / "last.pt"
