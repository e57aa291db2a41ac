"""Plain records that every dataset reader produces: one image, its identity, camera, modality."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np


class Modality(str, Enum):
    """The two sensor modalities of a cross-modality re-identification dataset."""

    RGB = "rgb"
    IR = "ir"


@dataclass(frozen=True)
class Record:
    """One image on disk: absolute path, the dataset's person id, camera number and modality."""

    path: str
    pid: int
    camera: int
    modality: Modality


def count_ids(records: Iterable[Record]) -> int:
    """Number of distinct person ids among ``records``."""
    return len({r.pid for r in records})


def label_map(records: Iterable[Record]) -> dict[int, int]:
    """Training labels 0..N-1 assigned to person ids in ascending id order."""
    return {pid: label for label, pid in enumerate(sorted({r.pid for r in records}))}


def labels_of(records: Sequence[Record], mapping: dict[int, int]) -> np.ndarray:
    """The training label of each record, as an int64 array."""
    return np.fromiter((mapping[r.pid] for r in records), dtype=np.int64, count=len(records))


def arrays_of(records: Sequence[Record]) -> tuple[np.ndarray, np.ndarray]:
    """Person ids and cameras of ``records`` as int64 arrays, the form evaluation works on."""
    pids = np.fromiter((r.pid for r in records), dtype=np.int64, count=len(records))
    cams = np.fromiter((r.camera for r in records), dtype=np.int64, count=len(records))
    return pids, cams
