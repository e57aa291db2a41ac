"""A user's own data: one CSV manifest, one image a row.

Columns (a header row is required, extra columns are ignored)::

    path,pid,camera,modality,split
    rgb/0001_c1_000.jpg,1,1,rgb,train
    ir/0001_c3_000.jpg,1,3,ir,train
    ...

``path`` is relative to the manifest's folder (or absolute); ``pid`` and ``camera`` are integers;
``modality`` is ``rgb`` or ``ir``; ``split`` is ``train``, ``query`` or ``gallery``.

Its test is one run, the query rows against the gallery rows, scored with the standard rules
(:data:`~msareid.rules.STANDARD`: standard CMC, nothing excluded, cosine similarity).
"""

from __future__ import annotations

import csv
import os
from functools import cached_property
from pathlib import Path
from typing import Any

from msareid.data.base import DEFAULT_SETTINGS, DatasetReader, TestRun, TestSettings, verify_images
from msareid.data.records import Modality, Record, count_ids
from msareid.errors import UserError, warn
from msareid.fileio import atomic_path
from msareid.rules import STANDARD

COLUMNS = ("path", "pid", "camera", "modality", "split")
MANIFEST_SPLITS = ("train", "query", "gallery")


def read_manifest(path: str | os.PathLike[str], check_files: bool = True) -> dict[str, list[Record]]:
    """Read a manifest into ``{"train": [...], "query": [...], "gallery": [...]}``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"manifest {path} does not exist: expected a CSV with columns {','.join(COLUMNS)}")
    base = path.parent
    out: dict[str, list[Record]] = {s: [] for s in MANIFEST_SPLITS}
    seen: dict[tuple[str, str], int] = {}
    duplicates: list[str] = []
    outside = 0
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # a byte-order mark is not a column
            reader = csv.DictReader(handle)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise UserError(
                    f"{path}: header lacks column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}"
                )
            for lineno, row in enumerate(reader, start=2):
                split = _split_of(path, lineno, row)
                record = _record_of(path, base, lineno, row, check_files)
                key = (split, record.path)
                if key in seen:
                    duplicates.append(f"{lineno} (= {seen[key]})")
                    continue
                seen[key] = lineno
                outside += not Path(row["path"] or "").is_absolute() and not _inside(record.path, base)
                out[split].append(record)
    except UnicodeDecodeError as exc:
        raise UserError(f"manifest {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                        "save it as UTF-8") from None
    if duplicates:
        warn(f"{path}: {len(duplicates)} duplicate row(s) left out, line(s) {', '.join(duplicates[:5])}")
    if outside:
        warn(f"{path}: {outside} relative image path(s) lead outside the manifest's folder {base}")
    if not any(out.values()):
        raise UserError(f"{path} lists no images")
    overlap = {r.pid for r in out["train"]} & {r.pid for r in out["query"] + out["gallery"]}
    if overlap:
        warn(f"{path}: {len(overlap)} id(s) are in both the train split and the query/gallery splits "
             f"(e.g. {', '.join(map(str, sorted(overlap)[:5]))}); test figures of such a model are not comparable")
    return out


def _inside(image: str, base: Path) -> bool:
    try:
        return Path(os.path.realpath(image)).is_relative_to(os.path.realpath(base))
    except ValueError:
        return False


def _split_of(path: Path, lineno: int, row: dict[str, str]) -> str:
    split = (row["split"] or "").strip()
    if split not in MANIFEST_SPLITS:
        raise UserError(f"{path}:{lineno}: split must be one of {', '.join(MANIFEST_SPLITS)}, got {split!r}")
    return split


def _record_of(path: Path, base: Path, lineno: int, row: dict[str, str], check: bool) -> Record:
    try:
        pid, camera = int(row["pid"]), int(row["camera"])
    except (TypeError, ValueError):
        raise UserError(
            f"{path}:{lineno}: pid and camera must be integers, got {row['pid']!r}, {row['camera']!r}"
        ) from None
    modality = (row["modality"] or "").strip().lower()
    if modality not in ("rgb", "ir"):
        raise UserError(f"{path}:{lineno}: modality must be rgb or ir, got {row['modality']!r}")
    image = Path(row["path"] or "")
    image = image if image.is_absolute() else base / image
    if check and not image.is_file():
        raise UserError(f"{path}:{lineno}: image {image} does not exist")
    return Record(os.path.normpath(image), pid, camera, Modality(modality))


def write_manifest(path: str | os.PathLike[str], splits: dict[str, list[Record]]) -> None:
    """Write records as a manifest, paths relative to the manifest's folder where possible."""
    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for split, records in splits.items():
            for r in records:
                rel = os.path.relpath(r.path, path.parent)
                writer.writerow([rel, r.pid, r.camera, r.modality.value, split])


class Manifest(DatasetReader):
    """A manifest CSV behind the dataset interface; ``root`` is the CSV file."""

    name = "manifest"
    title = "manifest"
    rules = STANDARD
    root_help = "the manifest CSV"

    @cached_property
    def splits(self) -> dict[str, list[Record]]:
        return read_manifest(self.root)

    def protocol_name(self, settings: TestSettings = DEFAULT_SETTINGS) -> str:
        return f"manifest/{self.root.name}"

    def train(self) -> tuple[list[Record], list[Record]]:
        train = self.splits["train"]
        return [r for r in train if r.modality is Modality.RGB], [r for r in train if r.modality is Modality.IR]

    def test_runs(self, settings: TestSettings = DEFAULT_SETTINGS) -> list[TestRun]:
        """One run: the query rows against the gallery rows."""
        query, gallery = self.splits["query"], self.splits["gallery"]
        if not query or not gallery:
            raise UserError(f"{self.root} needs rows with split query and split gallery to be evaluated")
        return [TestRun("manifest", query, gallery)]

    def summary(self, verify: bool = False) -> dict[str, Any]:
        """Counts of a manifest: ids and images per split and modality."""
        if verify:
            verify_images(r for records in self.splits.values() for r in records)
        out: dict[str, Any] = {"dataset": "manifest"}
        for split, records in self.splits.items():
            out[split] = {
                "ids": count_ids(records),
                "rgb": sum(r.modality is Modality.RGB for r in records),
                "ir": sum(r.modality is Modality.IR for r in records),
            }
        return out
