"""RegDB on disk: ``Visible/<id>/*.bmp``, ``Thermal/<id>/*.bmp`` and the providers' split files
``idx/{train,test}_{visible,thermal}_{k}.txt`` for trials k = 1..10, one ``<path> <label>`` a line.

Visible images are camera 1 (RGB), thermal images camera 2 (IR). The default test direction is
visible-to-thermal (query visible, gallery thermal); thermal-to-visible swaps them.
"""

from __future__ import annotations

import os
from pathlib import Path

from msareid.data.records import Modality, Record
from msareid.errors import UserError, warn

TRIALS = tuple(range(1, 11))
DIRECTIONS = ("visible-to-thermal", "thermal-to-visible")
_SIDES = {"visible": (1, Modality.RGB), "thermal": (2, Modality.IR)}


class RegDB:
    """Reader of a RegDB root for one trial (1..10)."""

    def __init__(self, root: str | os.PathLike[str], trial: int = 1) -> None:
        self.root = Path(root)
        if trial not in TRIALS:
            raise UserError(f"RegDB trial must be 1..10, got {trial}")
        self.trial = trial
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
        return out

    def train(self) -> tuple[list[Record], list[Record]]:
        """Visible (RGB) and thermal (IR) training records of this trial."""
        return self.records("train", "visible"), self.records("train", "thermal")

    def query_gallery(self, direction: str = "visible-to-thermal") -> tuple[list[Record], list[Record]]:
        """Query and gallery records of this trial's test split for ``direction``."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        visible, thermal = self.records("test", "visible"), self.records("test", "thermal")
        return (visible, thermal) if direction == DIRECTIONS[0] else (thermal, visible)
