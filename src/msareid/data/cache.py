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
import shutil
import sys
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from msareid.errors import UserError
from msareid.fileio import remove_stale_temporaries, reserve, write_text

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
    as a uint8 H x W x 3 array. 16-bit and 32-bit greyscale images (e.g. thermal frames saved as
    16-bit PNG) are scaled from their bit depth to 8 bits, not clipped to white."""
    img = to_8bit(img).convert("RGB")
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8)


def to_8bit(img: Image.Image) -> Image.Image:
    """An 8-bit image of ``img``: modes I;16* and I are scaled by their bit depth, F by its range."""
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode == "F":
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            arr = (arr - lo) / (hi - lo or 1.0) * 255.0
        else:
            bits = 16 if img.mode.startswith("I;16") or arr.max() < 65536 else 32
            arr = arr / (2**bits - 1) * 255.0
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    return img


def load_image(path: str, height: int, width: int) -> np.ndarray:
    """Decode ``path`` and :func:`fit_image` it; an unreadable file is a UserError naming it."""
    try:
        with Image.open(path) as img:
            return fit_image(img, height, width)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"image {path} cannot be decoded ({exc.__class__.__name__}: {exc})") from None


def _checksum_file(target: Path) -> Path:
    return target.with_name(target.name + ".sum")


def _sampled_checksum(array: np.ndarray, samples: int = 64) -> str:
    """CRC-32 of up to ``samples`` evenly spaced images: cheap to check at every open, and it catches
    a file overwritten or damaged in place (a full hash of gigabytes would cost seconds)."""
    rows = np.unique(np.linspace(0, len(array) - 1, num=min(samples, len(array))).astype(np.int64))
    crc = 0
    for i in rows:
        crc = zlib.crc32(np.ascontiguousarray(array[i]).tobytes(), crc)
    return f"{array.shape} {crc:08x}"


def _valid(target: Path, shape: tuple[int, ...]) -> bool:
    """Whether the cache file has the expected header, size and sampled checksum."""
    try:
        array = np.load(target, mmap_mode="r")
        if array.shape != shape or array.dtype != np.uint8:
            return False
        check = _checksum_file(target)
        return check.is_file() and check.read_text() == _sampled_checksum(array)
    except (OSError, ValueError, EOFError):
        return False


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
        shape = (len(paths), height, width, 3)
        if target.is_file():
            if _valid(target, shape):
                return cls(target)
            target.unlink(missing_ok=True)  # empty, truncated or corrupted: rebuild it below
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder)  # left by a process killed mid-build
        needed = int(np.prod(shape)) + 4096
        free = shutil.disk_usage(folder).free
        if free < needed:
            raise UserError(f"the image cache needs {needed / 2**30:.2f} GiB in {folder} but {free / 2**30:.2f} GiB "
                            "are free; free some space or put the cache on another disk (data.cache_dir, or "
                            "$MSAREID_CACHE_DIR where data.cache_dir is empty)")
        tmp = folder / f".{target.name}.{os.getpid()}.tmp"
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            reserve(tmp)
            with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
                decoded = pool.map(lambda p: load_image(p, height, width), paths)
                bar = tqdm(decoded, total=len(paths), desc=desc, disable=not (progress and sys.stderr.isatty()))
                for i, img in enumerate(bar):
                    out[i] = img
            out.flush()
            write_text(_checksum_file(target), _sampled_checksum(out))
            del out
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        return cls(target)
