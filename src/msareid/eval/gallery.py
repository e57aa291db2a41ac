"""Feature files of ``msareid extract`` and chunked top-k search over them.

A feature file is an uncompressed ``.npz`` with ``feat`` (N x D float32, L2-normalised BNNeck
features), ``paths``, ``pid``, ``cam`` and ``modality`` (one each a row). Its ``feat`` member is
memory-mapped straight from the zip archive, so a search over a gallery of millions of features
reads it in chunks instead of loading it.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from msareid.errors import UserError
from msareid.fileio import atomic_path

FEATURE_KEYS = ("feat", "paths", "pid", "cam", "modality")


def save_features(path: str | os.PathLike, feat: np.ndarray, paths: list[str], pid: np.ndarray, cam: np.ndarray,
                  modality: list[str], model_id: str = "") -> Path:
    """Write a feature file atomically: an ``.npz`` that ``np.load`` reads, whose ``feat`` member is
    stored first, uncompressed and 64-byte aligned, so it can be memory-mapped and fed to BLAS.
    ``model_id`` names the model that extracted them (``FeatureExtractor.model_id``)."""
    arrays = {"feat": np.ascontiguousarray(feat, dtype=np.float32), "paths": np.asarray(paths, dtype=str),
              "pid": np.asarray(pid, dtype=np.int64), "cam": np.asarray(cam, dtype=np.int64),
              "modality": np.asarray(modality, dtype=str), "model_id": np.asarray(model_id, dtype=str)}
    with atomic_path(path, suffix=".npz") as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for index, (name, array) in enumerate(arrays.items()):
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            if index == 0:  # local header at offset 0: pad its extra field so the data lands on 64 bytes
                fixed = 30 + len(info.filename) + 20 + 4 + len(header.getvalue())  # 20: the zip64 field
                info.extra = struct.pack("<HH", 0x6D73, -fixed % 64) + b"\0" * (-fixed % 64)
            with archive.open(info, "w", force_zip64=True) as member:
                member.write(header.getvalue())
                member.write(array.reshape(-1).view(np.uint8).data)
    return Path(path)


def mmap_member(path: Path, name: str) -> np.ndarray:
    """Memory-map an uncompressed ``.npy`` member of a zip archive."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{name}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            with archive.open(info) as member:
                return np.lib.format.read_array(member)
    with open(path, "rb") as handle:
        handle.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(handle.read(4), dtype="<u2")
        handle.seek(info.header_offset + 30 + int(name_len) + int(extra_len))
        version = np.lib.format.read_magic(handle)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:  # a newer format: read it whole
            with zipfile.ZipFile(path) as archive, archive.open(f"{name}.npy") as member:
                return np.lib.format.read_array(member)
        shape, fortran, dtype = readers[version](handle)
        offset = handle.tell()
    if dtype.hasobject:
        raise ValueError(f"{name} holds Python objects, which are not read (allow_pickle is off)")
    if int(np.prod(shape)) == 0:  # nothing to map
        return np.empty(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, offset=offset, order="F" if fortran else "C")


class FeatureFile:
    """A feature file opened for search: metadata in memory, ``feat`` memory-mapped."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"feature file {self.path} does not exist")
        try:
            with np.load(self.path, allow_pickle=False) as data:
                missing = [k for k in FEATURE_KEYS if k not in data.files]
                if missing:
                    raise UserError(f"{self.path} lacks {', '.join(missing)}: not a file of msareid extract")
                self.paths = data["paths"]
                self.pid, self.cam, self.modality = data["pid"], data["cam"], data["modality"]
                self.model_id = str(data["model_id"]) if "model_id" in data.files else ""
            self.feat = mmap_member(self.path, "feat")
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise UserError(f"{self.path} is not a readable feature file ({exc})") from exc
        if self.feat.ndim != 2 or self.feat.shape[0] != len(self.paths):
            raise UserError(f"{self.path}: 'feat' should be {len(self.paths)} x D, got {self.feat.shape}")
        if not np.issubdtype(self.feat.dtype, np.floating):
            raise UserError(f"{self.path}: 'feat' must hold real floating-point numbers, got {self.feat.dtype}")
        if self.feat.shape[0] == 0 or self.feat.shape[1] == 0:
            raise UserError(f"{self.path} holds no features (shape {self.feat.shape}): extract a gallery first")

    @property
    def dim(self) -> int:
        return int(self.feat.shape[1])


def top_k(query: np.ndarray, gallery: np.ndarray, k: int = 10, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine scores of the ``k`` most similar gallery rows for each query row.

    The gallery is read ``chunk`` rows at a time and the best k are merged, so memory stays at
    about Q x (chunk + k) scores whatever the gallery size. Ties keep gallery order.
    """
    query = np.asarray(query, dtype=np.float32)
    n = gallery.shape[0]
    k = min(k, n)
    best_s = np.full((query.shape[0], 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((query.shape[0], 0), dtype=np.int64)
    for start in range(0, n, chunk):
        block = np.asarray(gallery[start : start + chunk], dtype=np.float32)
        if not block.flags.aligned:  # BLAS needs aligned rows (a foreign npz); copying is much faster
            block = np.array(block)
        block_scores = query @ block.T
        if not np.isfinite(block_scores).all():
            row = start + int(np.flatnonzero(~np.isfinite(block_scores).all(axis=0))[0])
            raise UserError(f"gallery feature {row} holds NaN or infinite values; extract the gallery again")
        scores = np.concatenate([best_s, block_scores], axis=1)
        ids = np.broadcast_to(np.arange(start, start + len(block)), (len(query), len(block)))
        index = np.concatenate([best_i, ids], axis=1)
        keep = min(k, scores.shape[1])
        part = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
        best_s = np.take_along_axis(scores, part, axis=1)
        best_i = np.take_along_axis(index, part, axis=1)
    order = np.lexsort((best_i, -best_s), axis=1)  # by score, then by gallery index
    return np.take_along_axis(best_i, order, axis=1), np.take_along_axis(best_s, order, axis=1)
