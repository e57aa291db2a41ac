"""One entry point from a dataset name and root to training records, and readable summaries."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PIL import Image

from msareid.data.manifest import read_manifest
from msareid.data.records import Modality, Record, count_ids
from msareid.data.regdb import RegDB
from msareid.data.sysu import GALLERY_CAMERAS, RGB_CAMERAS, SysuMM01
from msareid.errors import UserError

DATASET_NAMES = ("sysu", "regdb", "manifest")


def train_records(name: str, root: str, trial: int = 1) -> tuple[list[Record], list[Record]]:
    """RGB and IR training records of dataset ``name`` at ``root`` (a manifest CSV for manifest)."""
    if name == "sysu":
        return SysuMM01(root).train()
    if name == "regdb":
        return RegDB(root, trial).train()
    if name == "manifest":
        train = read_manifest(root)["train"]
        return [r for r in train if r.modality is Modality.RGB], [r for r in train if r.modality is Modality.IR]
    raise UserError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")


def verify_images(records: Iterable[Record]) -> int:
    """Decode every image fully; raises naming the first one that fails. Returns the count."""
    n = 0
    for r in records:
        try:
            with Image.open(r.path) as img:
                img.load()
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise UserError(f"image {r.path} cannot be decoded ({exc.__class__.__name__}: {exc})") from None
        n += 1
    return n


def sysu_summary(ds: SysuMM01, verify: bool = False) -> dict[str, Any]:
    """The ``check-data sysu --json`` object: training and test counts for every gallery mode."""
    rgb, ir = ds.train()
    query = ds.query()
    gallery: dict[str, dict[str, int]] = {}
    valid: dict[str, int] = {}
    for mode in GALLERY_CAMERAS:
        single = ds.gallery(mode, shots=1, trial=0)
        multi = ds.gallery(mode, shots=10, trial=0)
        gallery[mode] = {"single": len(single), "multi": len(multi)}
        in_gallery = {r.pid for r in single}
        valid[mode] = sum(r.pid in in_gallery for r in query)
    if verify:
        verify_images(rgb + ir + query + ds.records(ds.test_ids(), RGB_CAMERAS))
    return {
        "dataset": "sysu",
        "train": {"ids": count_ids(rgb + ir), "rgb": len(rgb), "ir": len(ir)},
        "test": {"ids": len(ds.test_ids()), "query": len(query), "gallery": gallery},
        "valid_query": valid,
    }


def regdb_summary(ds: RegDB, verify: bool = False) -> dict[str, Any]:
    """The ``check-data regdb --json`` object for one trial."""
    train_v, train_t = ds.train()
    test_v, test_t = ds.records("test", "visible"), ds.records("test", "thermal")
    if verify:
        verify_images(train_v + train_t + test_v + test_t)
    return {
        "dataset": "regdb",
        "trial": ds.trial,
        "train": {"ids": count_ids(train_v + train_t), "visible": len(train_v), "thermal": len(train_t)},
        "test": {"ids": count_ids(test_v + test_t), "visible": len(test_v), "thermal": len(test_t)},
    }


def manifest_summary(path: str, verify: bool = False) -> dict[str, Any]:
    """Counts of a manifest: ids and images per split and modality."""
    splits = read_manifest(path)
    if verify:
        verify_images(r for records in splits.values() for r in records)
    out: dict[str, Any] = {"dataset": "manifest"}
    for split, records in splits.items():
        out[split] = {
            "ids": count_ids(records),
            "rgb": sum(r.modality is Modality.RGB for r in records),
            "ir": sum(r.modality is Modality.IR for r in records),
        }
    return out


def format_summary(summary: dict[str, Any]) -> str:
    """A human-readable rendering of a summary dict."""
    lines = [f"dataset: {summary['dataset']}" + (f" (trial {summary['trial']})" if "trial" in summary else "")]

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            lines.append(f"  {prefix:<28} {value:>8,}")

    walk("", {k: v for k, v in summary.items() if k not in ("dataset", "trial")})
    return "\n".join(lines)
