"""Built-in synthetic RGB/IR datasets written in the exact on-disk layouts of SYSU-MM01 and RegDB.

Deterministic for a seed: the same arguments give byte-identical files whatever the worker count.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msareid.data.synth_render import make_identity, render
from msareid.errors import UserError

SYSU_SIZE = (128, 64)  # typical H x W of a rendered frame by default; each image varies around it
REGDB_SIZE = (128, 64)
IR_CAMERAS = ("nir", "thermal")  # camera models of a synthetic SYSU-MM01's IR cameras


@dataclass(frozen=True)
class SysuSpec:
    """What ``msareid synth sysu`` writes."""

    ids: int = 40
    rgb_images: int = 8  # images per (id, RGB camera) folder, +-2 at random
    ir_images: int = 8  # images per (id, IR camera) folder, +-2 at random
    seed: int = 0
    frame_height: int = SYSU_SIZE[0]  # typical frame height in pixels; width about half
    jpeg_quality: int = 90
    ir_camera: str = "nir"  # cams 3 and 6: nir (SYSU-MM01's active near-infrared) | thermal (RegDB's emitted heat)


def _frame_size(rng: np.random.Generator, height: int) -> tuple[int, int]:
    h = int(height * rng.uniform(0.85, 1.2))
    return h, max(16, int(h * rng.uniform(0.42, 0.55)))


def _sysu_cameras(rng: np.random.Generator) -> list[int]:
    ir = [[3, 6], [3], [6]][int(rng.choice(3, p=[0.5, 0.25, 0.25]))]
    rgb = [c for c in (1, 2, 4, 5) if rng.random() < 0.6] or [int(rng.choice([1, 2, 4, 5]))]
    return sorted(rgb + ir)


def _count(rng: np.random.Generator, n: int) -> int:
    return int(rng.integers(max(1, n - 2), n + 3))


def _write_sysu_person(args: tuple[Path, SysuSpec, int]) -> None:
    root, spec, pid = args
    ident = make_identity(spec.seed, pid)
    layout = np.random.default_rng([spec.seed, pid, 1])
    for cam in _sysu_cameras(layout):
        infrared = cam in (3, 6)
        n = _count(layout, spec.ir_images if infrared else spec.rgb_images)
        folder = root / f"cam{cam}" / f"{pid:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            rng = np.random.default_rng([spec.seed, pid, cam, i])
            img = render(ident, cam, spec.ir_camera if infrared else "rgb", _frame_size(rng, spec.frame_height), rng)
            img.save(folder / f"{i:04d}.jpg", quality=spec.jpeg_quality)


def _split_ids(ids: int, seed: int) -> dict[str, list[int]]:
    n_test = max(2, round(ids * 96 / 491))  # the real dataset's proportions
    n_val = max(1, round(ids * 99 / 491))
    if ids - n_test - n_val < 2:
        raise UserError(f"--ids {ids} is too few: a synthetic SYSU-MM01 needs at least 6 ids")
    perm = np.random.default_rng([seed, 2]).permutation(np.arange(1, ids + 1))
    return {
        "test": sorted(perm[:n_test].tolist()),
        "val": sorted(perm[n_test:n_test + n_val].tolist()),
        "train": sorted(perm[n_test + n_val:].tolist()),
    }


def pool_map(fn, tasks: list, workers: int) -> None:
    if workers <= 1:
        for t in tasks:
            fn(t)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(fn, tasks, chunksize=4))


def write_sysu(out: str | os.PathLike[str], spec: SysuSpec = SysuSpec(), workers: int = 1) -> Path:
    """Write a synthetic SYSU-MM01 (cam1..cam6, exp/*_id.txt) under ``out``; returns the root."""
    root = Path(out)
    if spec.ir_camera not in IR_CAMERAS:
        raise UserError(f"--ir-camera must be one of {', '.join(IR_CAMERAS)}, got {spec.ir_camera!r}")
    if root.exists() and any(root.iterdir()):
        raise UserError(f"{root} is not empty: choose a new folder for the synthetic dataset")
    splits = _split_ids(spec.ids, spec.seed)
    for cam in range(1, 7):
        (root / f"cam{cam}").mkdir(parents=True, exist_ok=True)
    pool_map(_write_sysu_person, [(root, spec, pid) for pid in range(1, spec.ids + 1)], workers)
    (root / "exp").mkdir(exist_ok=True)
    for split, pids in splits.items():
        (root / "exp" / f"{split}_id.txt").write_text(",".join(str(p) for p in pids) + "\n")
    return root


@dataclass(frozen=True)
class RegdbSpec:
    """What ``msareid synth regdb`` writes."""

    ids: int = 40
    images: int = 10  # per person and modality, as in the real dataset
    seed: int = 0


def _write_regdb_person(args: tuple[Path, RegdbSpec, int]) -> None:
    root, spec, pid = args
    ident = make_identity(spec.seed, pid)
    layout = np.random.default_rng([spec.seed, pid, 1])
    sex, view = ("female", "male")[int(layout.integers(2))], ("front", "back")[int(layout.integers(2))]
    for side, letter, cam, infrared in (("Visible", "v", 1, False), ("Thermal", "t", 2, True)):
        folder = root / side / str(pid)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(1, spec.images + 1):
            rng = np.random.default_rng([spec.seed, pid, cam, i])
            img = render(ident, cam + 10, "thermal" if infrared else "rgb", REGDB_SIZE, rng)
            img.save(folder / f"{sex}_{view}_{letter}_{i:05d}_{pid}.bmp")


def regdb_file_name(root: Path, side: str, pid: int) -> list[str]:
    """Relative paths of the images of ``side`` (Visible/Thermal) for ``pid``, sorted."""
    return sorted(f"{side}/{pid}/{n}" for n in os.listdir(root / side / str(pid)))


def write_regdb(out: str | os.PathLike[str], spec: RegdbSpec = RegdbSpec(), workers: int = 1) -> Path:
    """Write a synthetic RegDB (Visible/, Thermal/, idx/ for trials 1..10) under ``out``."""
    root = Path(out)
    if root.exists() and any(root.iterdir()):
        raise UserError(f"{root} is not empty: choose a new folder for the synthetic dataset")
    if spec.ids < 4:
        raise UserError(f"--ids {spec.ids} is too few: a synthetic RegDB needs at least 4 ids")
    pool_map(_write_regdb_person, [(root, spec, pid) for pid in range(1, spec.ids + 1)], workers)
    (root / "idx").mkdir(parents=True, exist_ok=True)
    for trial in range(1, 11):
        perm = np.random.default_rng([spec.seed, trial, 3]).permutation(np.arange(1, spec.ids + 1))
        half = spec.ids // 2
        for split, pids in (("train", sorted(perm[:half])), ("test", sorted(perm[half:]))):
            for side, name in (("Visible", "visible"), ("Thermal", "thermal")):
                lines = [f"{path} {label}" for label, pid in enumerate(pids)
                         for path in regdb_file_name(root, side, int(pid))]
                (root / "idx" / f"{split}_{name}_{trial}.txt").write_text("\n".join(lines) + "\n")
    return root
