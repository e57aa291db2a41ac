"""Shared fixtures: hand-built trees in the real layouts, small synthetic datasets and helpers.

Test modules take what they share from here as fixtures (``image_writer``, ``sysu_counts``,
``rand_perm_writer``, ``tiny_config``), never by importing this file or each other. The tests
address the repository's own files (``configs/``, ``bench/``) from its root: every test runs there,
so the suite passes from any working directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from msareid.config import Config
from msareid.data.synthetic import RegdbSpec, SysuSpec, write_regdb, write_sysu
from msareid.recipes import load_config

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


REPO = Path(__file__).resolve().parents[1]

# Under pytest-xdist (`make test` runs one worker a core) the workers share the cores: each test
# process and the processes it starts get cores / workers torch threads, never every core each.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = max(1, len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ["MSAREID_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(_share)


@pytest.fixture(scope="session", autouse=True)
def _at_repository_root() -> Iterator[None]:
    """Run every test (and session fixture) from the repository root: ``configs/tiny.toml`` means
    the project's file wherever pytest was started."""
    before = Path.cwd()
    os.chdir(REPO)
    yield
    os.chdir(before)


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
    from msareid.engine import train
    from msareid.recipes import load_config

    tmp = tmp_path_factory.mktemp("tiny_run")
    cfg = load_config("configs/tiny.toml", [
        f"data.root={synth_sysu}", f"data.cache_dir={tmp / 'cache'}", "data.height=32", "data.width=16",
        "train.epochs=1", "train.max_steps_per_epoch=3", "sampler.num_ids=3", "sampler.num_instances=2",
    ])
    train(cfg, tmp / "run", progress=False)
    return tmp / "run" / "last.pt"


@pytest.fixture
def image_writer() -> Callable[..., None]:
    """``write_image(path, value=0, size=(8, 16))``: a flat-colour image file, folders created."""
    return write_image


@pytest.fixture
def sysu_counts() -> dict:
    """The hand-built SYSU-MM01 tree of ``sysu_tree``: {pid: {camera: number of images}}."""
    return SYSU_TREE


def write_rand_perm(path: Path, tree: dict, n_ids: int, rng: np.random.Generator) -> dict:
    """rand_perm_cam.mat in the authors' layout: a 6x1 cell of n_ids x 1 cells of 10 x n perms."""
    perms = {}
    cells = np.empty((6, 1), dtype=object)
    for cam in range(1, 7):
        per_id = np.empty((n_ids, 1), dtype=object)
        for pid in range(1, n_ids + 1):
            n = tree.get(pid, {}).get(cam, 0)
            table = np.stack([rng.permutation(n) + 1 for _ in range(10)]).astype(np.float64) if n else np.zeros((0, 0))
            per_id[pid - 1, 0] = table
            perms[(cam, pid)] = table
        cells[cam - 1, 0] = per_id
    scipy.io.savemat(str(path), {"rand_perm_cam": cells})
    return perms


@pytest.fixture
def rand_perm_writer() -> Callable[..., dict]:
    """``write_rand_perm(path, tree, n_ids, rng)``: the authors' rand_perm_cam.mat for a tree."""
    return write_rand_perm


def _tiny_overrides(root: Path, cache: Path, **extra) -> list[str]:
    base = {"data.root": str(root), "data.cache_dir": str(cache), "data.height": 32, "data.width": 16,
            "data.pad": 2, "train.epochs": 2, "train.warmup_epochs": 1, "train.max_steps_per_epoch": 3,
            "train.log_every": 1, "train.deterministic": "true", "sampler.num_ids": 3, "sampler.num_instances": 2}
    base.update(extra)
    return [f"{k}={v}" if not isinstance(v, str) or v in ("true", "false") else f'{k}="{v}"'
            for k, v in base.items()]


def _tiny_config(root: Path, cache: Path, **extra) -> Config:
    return load_config("configs/tiny.toml", _tiny_overrides(root, cache, **extra))


@pytest.fixture
def tiny_config() -> Callable[..., Config]:
    """``tiny_config(root, cache, **overrides)``: configs/tiny.toml at 32 x 16, 2 epochs of 3 steps."""
    return _tiny_config


@pytest.fixture
def tiny_overrides() -> Callable[..., list[str]]:
    """``tiny_overrides(root, cache, **overrides)``: the ``--set`` texts of ``tiny_config``."""
    return _tiny_overrides
