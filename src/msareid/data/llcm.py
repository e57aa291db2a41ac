"""LLCM (Zhang & Wang, CVPR 2023), the low-light cross-modality benchmark, on disk and synthetic.

Layout::

    train_vis/cam<c>/<PPPP>/<file>   train_nir/cam<c>/<PPPP>/<file>
    test_vis/cam<c>/<PPPP>/<file>    test_nir/cam<c>/<PPPP>/<file>
    idx/train_vis.txt  idx/train_nir.txt   one "<relative path> <label>" a line
    idx/test_id.txt                        one line of comma-separated test ids

The camera is the single digit after ``cam``; visible (VIS) test cameras are 1-9, near-infrared
(NIR) test cameras 1, 2 and 4-9. The real dataset: 1,064 ids, 46,767 images, 713 training ids.

The test protocol reproduces the reference code (the DEEN folder of its authors' repository): for
trial ``t`` in 0..9, ``random.seed(t)``, then for each test id in ascending order and each camera of
the gallery modality in ascending order whose folder exists, one ``random.choice`` over the sorted
files. The query is every test image of the other modality. Two directions:

* ``ir-to-visible`` (default): NIR queries against a sampled VIS gallery;
* ``visible-to-ir``: VIS queries against a sampled NIR gallery, **scored transposed** as the
  reference code does: its test script passes the matrices swapped, so the sampled NIR images are
  the queries ranked against every VIS test image. The runs are :class:`TestRun` with
  ``transposed`` set; ``check-data`` counts the sets as they are built (query = all VIS images).

Ranking rules: a query loses the gallery images of its own identity and camera; CMC keeps the
first occurrence of each gallery identity (as SYSU-MM01); AP and INP as everywhere.
"""

from __future__ import annotations

import argparse
import os
import random
import re
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from msareid.argtypes import positive_int
from msareid.data.base import (
    DEFAULT_SETTINGS,
    DatasetReader,
    TestRun,
    TestSettings,
    check_label_list,
    read_id_file,
    verify_images,
)
from msareid.data.records import Modality, Record, count_ids
from msareid.errors import UserError, warn
from msareid.rules import RankingRules

VIS_CAMERAS = tuple(range(1, 10))
NIR_CAMERAS = (1, 2, 4, 5, 6, 7, 8, 9)
DIRECTIONS = ("ir-to-visible", "visible-to-ir")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_SIDES = {"vis": (Modality.RGB, VIS_CAMERAS), "nir": (Modality.IR, NIR_CAMERAS)}
_PATH = re.compile(r"(?:^|/)cam(\d)/(\d+)/[^/]+$")


def _read_test_ids(path: Path) -> list[int]:
    return sorted(read_id_file(path))


class LLCM(DatasetReader):
    """Reader of an LLCM root (see the module docstring)."""

    name = "llcm"
    title = "LLCM"
    rules = RankingRules("llcm", cmc="identity", same_camera_same_id=True)
    image_size = (384, 144)  # the reference code's
    directions = DIRECTIONS
    num_classes = 713

    def __init__(self, root: str | os.PathLike[str], trial: int = 1) -> None:
        super().__init__(root, trial)
        if not self.root.is_dir():
            raise UserError(f"LLCM root {self.root} does not exist or is not a folder")
        for sub in ("train_vis", "train_nir", "test_vis", "test_nir", "idx"):
            if not (self.root / sub).is_dir():
                raise UserError(f"{self.root / sub} is missing: an LLCM root holds train_vis/, train_nir/, "
                                "test_vis/, test_nir/ and idx/")

    # ---- training ---------------------------------------------------------------------------
    def _train_side(self, side: str) -> list[Record]:
        path = self.root / "idx" / f"train_{side}.txt"
        if not path.is_file():
            raise UserError(f"{path} is missing: expected '<relative path> <label>' lines")
        modality = _SIDES[side][0]
        out, outside, labels = [], 0, []
        root = os.path.realpath(self.root)
        for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise UserError(f"{path}:{lineno}: expected '<relative path> <integer label>', got {line[:80]!r}")
            match = _PATH.search(parts[0].replace("\\", "/"))
            if match is None:
                raise UserError(f"{path}:{lineno}: expected a path like train_{side}/cam1/0001/<file>, "
                                f"got {parts[0]!r}")
            image = self.root / parts[0]
            if not image.is_file():
                raise UserError(f"{path}:{lineno}: image {image} does not exist")
            outside += os.path.commonpath([root, os.path.realpath(image)]) != root
            out.append(Record(str(image), int(match.group(2)), int(match.group(1)), modality))
            labels.append(int(parts[1]))
        if outside:
            warn(f"{path}: {outside} image path(s) lead outside the dataset root {self.root}")
        if not out:
            raise UserError(f"{path} lists no images: expected '<relative path> <label>' lines")
        keep = check_label_list(path, [r.path for r in out], labels, [str(r.pid) for r in out])
        return [out[i] for i in keep]

    def train(self) -> tuple[list[Record], list[Record]]:
        """VIS (RGB) and NIR (IR) training records of ``idx/train_{vis,nir}.txt``, in file order."""
        rgb, ir = self._train_side("vis"), self._train_side("nir")
        overlap = sorted({r.pid for r in rgb + ir} & set(self.test_ids()))
        if overlap:
            warn(f"{self.root / 'idx'}: {len(overlap)} id(s) are in both the training lists and test_id.txt "
                 f"(e.g. {', '.join(map(str, overlap[:5]))}); test figures of such a model are not comparable")
        return rgb, ir

    # ---- test -------------------------------------------------------------------------------
    def test_ids(self) -> list[int]:
        """The ids of ``idx/test_id.txt``, ascending."""
        return _read_test_ids(self.root / "idx" / "test_id.txt")

    @cache  # noqa: B019 - one reader per root, the cache lives as long as it
    def files(self, side: str, camera: int, pid: int) -> tuple[str, ...]:
        """Sorted image paths of ``test_<side>/cam<camera>/<pid:04d>``; empty when it does not exist."""
        folder = self.root / f"test_{side}" / f"cam{camera}" / f"{pid:04d}"
        if not folder.is_dir():
            return ()
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_SUFFIXES))
        if not names:
            raise UserError(f"{folder} holds no images")
        return tuple(str(folder / n) for n in names)

    def test_images_of(self, side: str) -> list[Record]:
        """Every test image of one modality (``vis`` or ``nir``), id by id, camera by camera."""
        modality, cameras = _SIDES[side]
        return [Record(p, pid, cam, modality) for pid in self.test_ids() for cam in cameras
                for p in self.files(side, cam, pid)]

    def sampled_gallery(self, side: str, trial: int) -> list[Record]:
        """Trial ``trial``'s gallery of one modality: one image per (id, camera), the reference sampler."""
        modality, cameras = _SIDES[side]
        rng = random.Random(trial)  # the same draws as random.seed(trial), without the global state
        out = []
        for pid in self.test_ids():
            for cam in cameras:
                files = self.files(side, cam, pid)
                if files:
                    out.append(Record(rng.choice(files), pid, cam, modality))
        return out

    def protocol_name(self, settings: TestSettings = DEFAULT_SETTINGS) -> str:
        return f"llcm/{self.direction(settings)}"

    def test_runs(self, settings: TestSettings = DEFAULT_SETTINGS) -> list[TestRun]:
        """One run a trial in the direction of ``settings`` (visible-to-ir scored transposed)."""
        if not 1 <= settings.trials <= 10:
            raise UserError(f"LLCM has 10 trials; eval.trials must be 1..10, got {settings.trials}")
        direction = self.direction(settings)
        query_side, gallery_side = ("nir", "vis") if direction == "ir-to-visible" else ("vis", "nir")
        query = self.test_images_of(query_side)
        transposed = direction == "visible-to-ir"
        details = {"direction": direction, "sampler": "reference", **({"transposed": True} if transposed else {})}
        return [TestRun(f"trial {t}", query, self.sampled_gallery(gallery_side, t), transposed, {"trial": t, **details})
                for t in range(settings.trials)]

    def summary(self, verify: bool = False) -> dict[str, Any]:
        """The ``check-data llcm --json`` object; the test sets counted as the reference code builds them."""
        rgb, ir = self.train()
        vis, nir = self.test_images_of("vis"), self.test_images_of("nir")
        if verify:
            verify_images(rgb + ir + vis + nir)
        return {
            "dataset": "llcm",
            "train_ids": count_ids(rgb + ir), "train_rgb": len(rgb), "train_ir": len(ir),
            "test_ids": len(self.test_ids()),
            "directions": {
                "ir-to-visible": {"query": len(nir), "gallery": len(self.sampled_gallery("vis", 0))},
                "visible-to-ir": {"query": len(vis), "gallery": len(self.sampled_gallery("nir", 0))},
            },
        }

    # ---- synthetic --------------------------------------------------------------------------
    @classmethod
    def add_synth_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--per-camera", type=positive_int, default=4,
                            help="LLCM: images per (id, camera), +-1 (default 4)")

    @classmethod
    def write_synthetic(cls, out: Path, ids: int, seed: int, workers: int, args: argparse.Namespace) -> Path:
        return write_synthetic_llcm(out, ids, seed, getattr(args, "per_camera", 4), workers)


def _low_light(arr: np.ndarray, rng: np.random.Generator, infrared: bool) -> np.ndarray:
    """A frame taken at night: dim, with sensor noise; the visible camera loses colour saturation."""
    arr = arr.astype(np.float32)
    if not infrared:
        grey = arr.mean(axis=-1, keepdims=True)
        arr = grey + (arr - grey) * rng.uniform(0.3, 0.7)
    arr = arr * rng.uniform(0.3, 0.6) + rng.normal(0.0, rng.uniform(4.0, 9.0), arr.shape)
    return np.clip(arr, 0, 255).astype(np.uint8)


def _write_person(task: tuple[Path, int, int, int, str]) -> None:
    from PIL import Image

    from msareid.data.synth_render import make_identity, render

    root, seed, pid, per_camera, split = task
    ident = make_identity(seed, pid)
    layout = np.random.default_rng([seed, pid, 7])
    for side, (_, cameras) in _SIDES.items():
        chosen = sorted(layout.choice(cameras, size=int(layout.integers(2, 5)), replace=False).tolist())
        for cam in chosen:
            folder = root / f"{split}_{side}" / f"cam{cam}" / f"{pid:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(1, int(layout.integers(max(1, per_camera - 1), per_camera + 2)) + 1):
                rng = np.random.default_rng([seed, pid, cam, i, side == "nir"])
                h = int(128 * rng.uniform(0.9, 1.15))
                img = render(ident, cam + 30, "nir" if side == "nir" else "rgb", (h, int(h * rng.uniform(0.4, 0.5))),
                             rng)
                arr = _low_light(np.asarray(img), rng, side == "nir")
                Image.fromarray(arr, "RGB").save(folder / f"{pid:04d}_c{cam:02d}_{i:04d}.jpg", quality=90)


def write_synthetic_llcm(out: str | os.PathLike[str], ids: int = 40, seed: int = 0, per_camera: int = 4,
                         workers: int = 1) -> Path:
    """Write a deterministic synthetic LLCM under ``out`` (the real layout; low-light VIS and NIR)."""
    from msareid.data.synthetic import pool_map

    root = Path(out)
    if root.exists() and any(root.iterdir()):
        raise UserError(f"{root} is not empty: choose a new folder for the synthetic dataset")
    if ids < 6:
        raise UserError(f"--ids {ids} is too few: a synthetic LLCM needs at least 6 ids")
    if per_camera < 1:
        raise UserError(f"--per-camera must be positive, got {per_camera}")
    perm = np.random.default_rng([seed, 8]).permutation(np.arange(1, ids + 1))
    n_test = max(2, round(ids * 351 / 1064))  # the real dataset's proportions
    test, train = sorted(perm[:n_test].tolist()), sorted(perm[n_test:].tolist())
    for split in ("train", "test"):
        for side in _SIDES:
            (root / f"{split}_{side}").mkdir(parents=True, exist_ok=True)
    tasks = [(root, seed, pid, per_camera, "test" if pid in test else "train") for pid in range(1, ids + 1)]
    pool_map(_write_person, tasks, workers)
    (root / "idx").mkdir(exist_ok=True)
    labels = {pid: label for label, pid in enumerate(train)}
    for side in _SIDES:
        lines = []
        for pid in train:
            for cam_dir in sorted((root / f"train_{side}").glob("cam*")):
                folder = cam_dir / f"{pid:04d}"
                if folder.is_dir():
                    lines += [f"train_{side}/{cam_dir.name}/{pid:04d}/{n} {labels[pid]}"
                              for n in sorted(os.listdir(folder))]
        (root / "idx" / f"train_{side}.txt").write_text("\n".join(lines) + "\n")
    (root / "idx" / "test_id.txt").write_text(",".join(str(p) for p in test) + "\n")
    return root
