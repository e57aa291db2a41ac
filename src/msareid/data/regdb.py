"""RegDB on disk: ``Visible/<id>/*.bmp``, ``Thermal/<id>/*.bmp`` and the providers' split files
``idx/{train,test}_{visible,thermal}_{k}.txt`` for trials k = 1..10, one ``<path> <label>`` a line.

Visible images are camera 1 (RGB), thermal images camera 2 (IR). The default test direction is
visible-to-thermal (query visible, gallery thermal); thermal-to-visible swaps them.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from msareid.argtypes import positive_int
from msareid.data.base import DEFAULT_SETTINGS, DatasetReader, TestRun, TestSettings, check_label_list, verify_images
from msareid.data.records import Modality, Record, count_ids
from msareid.errors import UserError, warn
from msareid.rules import RankingRules

TRIALS = tuple(range(1, 11))
DIRECTIONS = ("visible-to-thermal", "thermal-to-visible")
_SIDES = {"visible": (1, Modality.RGB), "thermal": (2, Modality.IR)}


class RegDB(DatasetReader):
    """Reader of a RegDB root for one trial (1..10)."""

    name = "regdb"
    title = "RegDB"
    rules = RankingRules("regdb", cmc="image")
    image_size = (288, 144)
    directions = DIRECTIONS
    num_classes = 206

    def __init__(self, root: str | os.PathLike[str], trial: int = 1) -> None:
        super().__init__(root, trial)
        if trial not in TRIALS:
            raise UserError(f"RegDB trial must be 1..10, got {trial}")
        if not self.root.is_dir():
            raise UserError(f"RegDB root {self.root} does not exist or is not a folder")
        for sub in ("Visible", "Thermal", "idx"):
            if not (self.root / sub).is_dir():
                raise UserError(
                    f"{self.root / sub} is missing: a RegDB root holds Visible/, Thermal/ and idx/ "
                    "(the split files come with the dataset from its providers)"
                )

    def split_file(self, split: str, side: str) -> Path:
        """Path of ``idx/{split}_{side}_{trial}.txt``."""
        return self.root / "idx" / f"{split}_{side}_{self.trial}.txt"

    def records(self, split: str, side: str) -> list[Record]:
        """Records of one split file (split: train/test; side: visible/thermal), in file order."""
        if split not in ("train", "test") or side not in _SIDES:
            raise ValueError(f"unknown RegDB split/side {split!r}/{side!r}")
        path = self.split_file(split, side)
        if not path.is_file():
            raise UserError(
                f"{path} is missing: RegDB's split files idx/{{train,test}}_{{visible,thermal}}_"
                "{1..10}.txt come with the dataset from its providers"
            )
        camera, modality = _SIDES[side]
        out = []
        outside = 0
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UserError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise UserError(
                    f"{path}:{lineno}: expected '<relative path> <integer label>', got {line[:80]!r}"
                )
            image = self.root / parts[0]
            if not image.is_file():
                raise UserError(f"{path}:{lineno}: image {image} does not exist")
            root = os.path.realpath(self.root)
            outside += os.path.commonpath([root, os.path.realpath(image)]) != root
            out.append(Record(str(image), int(parts[1]), camera, modality))
        if outside:
            warn(f"{path}: {outside} image path(s) lead outside the dataset root {self.root}")
        if not out:
            raise UserError(f"{path} lists no images: expected '<relative path> <label>' lines")
        keep = check_label_list(path, [r.path for r in out], [r.pid for r in out],
                                [os.path.dirname(r.path) for r in out])
        return [out[i] for i in keep]

    def train(self) -> tuple[list[Record], list[Record]]:
        """Visible (RGB) and thermal (IR) training records of this trial."""
        return self.records("train", "visible"), self.records("train", "thermal")

    def query_gallery(self, direction: str = "visible-to-thermal") -> tuple[list[Record], list[Record]]:
        """Query and gallery records of this trial's test split for ``direction``."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        visible, thermal = self.records("test", "visible"), self.records("test", "thermal")
        return (visible, thermal) if direction == DIRECTIONS[0] else (thermal, visible)

    def protocol_name(self, settings: TestSettings = DEFAULT_SETTINGS) -> str:
        return f"regdb/trial{self.trial}/{self.direction(settings)}"

    def test_runs(self, settings: TestSettings = DEFAULT_SETTINGS) -> list[TestRun]:
        """The one run of this trial: a model trained on trial k is tested on trial k only."""
        direction = self.direction(settings)
        query, gallery = self.query_gallery(direction)
        return [TestRun(f"trial {self.trial}", query, gallery, details={"trial": self.trial, "direction": direction})]

    def summary(self, verify: bool = False) -> dict[str, Any]:
        """The ``check-data regdb --json`` object for one trial."""
        train_v, train_t = self.train()
        test_v, test_t = self.records("test", "visible"), self.records("test", "thermal")
        if verify:
            verify_images(train_v + train_t + test_v + test_t)
        return {
            "dataset": "regdb",
            "trial": self.trial,
            "train": {"ids": count_ids(train_v + train_t), "visible": len(train_v), "thermal": len(train_t)},
            "test": {"ids": count_ids(test_v + test_t), "visible": len(test_v), "thermal": len(test_t)},
        }

    @classmethod
    def add_synth_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--images", type=positive_int, default=10, help="RegDB: images per id and modality")

    @classmethod
    def write_synthetic(cls, out: Path, ids: int, seed: int, workers: int, args: argparse.Namespace) -> Path:
        from msareid.data.synthetic import RegdbSpec, write_regdb

        return write_regdb(out, RegdbSpec(ids=ids, images=getattr(args, "images", 10), seed=seed), workers)
