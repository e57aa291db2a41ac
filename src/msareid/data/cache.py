"""An on-disk cache of decoded images: one uint8 array (N x H x W x 3) read by memory map.

Each split is decoded and resized once. The file name is a hash of the image paths, their sizes and
modification times, and the target size, so a changed source or size builds a new cache. The array
is written to a temporary file and renamed into place, so a crash never leaves a partial cache.
A training process maps the file instead of holding the decoded set in memory.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from msareid.errors import UserError

CACHE_VERSION = 1


def default_cache_dir(configured: str = "") -> Path:
    """``configured``, else ``$MSAREID_CACHE_DIR``, else ``~/.cache/msareid``."""
    if configured:
        return Path(configured)
    env = os.environ.get("MSAREID_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "msareid"


def cache_key(paths: Sequence[str], height: int, width: int) -> str:
    """Hash of the sources (path, size, mtime) and the decoded size."""
    digest = hashlib.sha256(f"msareid-cache v{CACHE_VERSION} {height}x{width}\n".encode())
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            raise UserError(f"image {p} does not exist or cannot be read") from None
        digest.update(f"{p}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def fit_image(img: Image.Image, height: int, width: int) -> np.ndarray:
    """``img`` as RGB, resized to ``height`` x ``width`` (Lanczos, as the reference preprocessing),
    as a uint8 H x W x 3 array."""
    img = img.convert("RGB")
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8)


def load_image(path: str, height: int, width: int) -> np.ndarray:
    """Decode ``path`` and :func:`fit_image` it; an unreadable file is a UserError naming it."""
    try:
        with Image.open(path) as img:
            return fit_image(img, height, width)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"image {path} cannot be decoded ({exc.__class__.__name__}: {exc})") from None


class ImageCache:
    """Decoded images of a fixed list of paths, memory-mapped from ``path`` on first access."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._array: np.ndarray | None = None
        self._len = int(np.load(self.path, mmap_mode="r").shape[0])

    @property
    def array(self) -> np.ndarray:
        """The read-only memory map, opened lazily (so each DataLoader worker maps its own)."""
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r")
            raw = getattr(self._array, "_mmap", None)
            if raw is not None and hasattr(mmap, "MADV_RANDOM"):
                raw.madvise(mmap.MADV_RANDOM)  # training reads images in random order: no read-ahead
        return self._array

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> np.ndarray:
        return self.array[index]

    def __getstate__(self) -> dict:
        return {"path": self.path, "_array": None, "_len": self._len}

    @classmethod
    def build(
        cls,
        paths: Sequence[str],
        height: int,
        width: int,
        cache_dir: str | os.PathLike[str],
        threads: int = 4,
        progress: bool = False,
        desc: str = "decode",
    ) -> ImageCache:
        """Load the cache of ``paths`` at ``height`` x ``width``, building it first if needed."""
        if not paths:
            raise UserError("nothing to cache: the image list is empty")
        folder = Path(cache_dir)
        target = folder / f"{cache_key(paths, height, width)}_{len(paths)}x{height}x{width}.npy"
        if target.is_file():
            try:
                return cls(target)
            except (OSError, ValueError):
                pass  # unreadable: rebuild it below
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{target.name}.{os.getpid()}.tmp"
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), height, width, 3))
            with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
                decoded = pool.map(lambda p: load_image(p, height, width), paths)
                bar = tqdm(decoded, total=len(paths), desc=desc, disable=not (progress and sys.stderr.isatty()))
                for i, img in enumerate(bar):
                    out[i] = img
            out.flush()
            del out
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        return cls(target)
