import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from msareid.data.cache import ImageCache, default_cache_dir, load_image
from msareid.errors import UserError


@pytest.fixture
def images(tmp_path: Path, image_writer) -> list[str]:
    paths = []
    for i in range(5):
        p = tmp_path / "img" / f"{i}.png"
        image_writer(p, value=40 * i, size=(10 + i, 20))
        paths.append(str(p))
    return paths


def test_build_decodes_and_resizes_every_image(images: list[str], tmp_path: Path) -> None:
    cache = ImageCache.build(images, 16, 8, tmp_path / "cache")
    assert len(cache) == 5 and cache.array.shape == (5, 16, 8, 3) and cache.array.dtype == np.uint8
    for i, p in enumerate(images):
        np.testing.assert_array_equal(cache[i], load_image(p, 16, 8))
    assert isinstance(cache.array, np.memmap)
    assert not any(n.endswith(".tmp") for n in os.listdir(tmp_path / "cache"))


def test_second_build_reuses_the_file(images: list[str], tmp_path: Path) -> None:
    first = ImageCache.build(images, 16, 8, tmp_path / "cache")
    stamp = first.path.stat().st_mtime_ns
    second = ImageCache.build(images, 16, 8, tmp_path / "cache")
    assert second.path == first.path and second.path.stat().st_mtime_ns == stamp


def test_changed_source_or_size_builds_a_new_cache(images: list[str], tmp_path: Path, image_writer) -> None:
    first = ImageCache.build(images, 16, 8, tmp_path / "cache")
    assert ImageCache.build(images, 32, 16, tmp_path / "cache").path != first.path
    image_writer(Path(images[2]), value=255, size=(30, 20))
    rebuilt = ImageCache.build(images, 16, 8, tmp_path / "cache")
    assert rebuilt.path != first.path
    assert rebuilt[2].min() == 255 and first[2].max() < 255


def test_unreadable_image_names_the_file_and_leaves_nothing(images: list[str], tmp_path: Path) -> None:
    Path(images[3]).write_bytes(b"not an image")
    with pytest.raises(UserError, match=r"image .*3\.png cannot be decoded"):
        ImageCache.build(images, 16, 8, tmp_path / "cache")
    assert os.listdir(tmp_path / "cache") == []


def test_a_corrupt_cache_file_is_rebuilt(images: list[str], tmp_path: Path) -> None:
    cache = ImageCache.build(images, 16, 8, tmp_path / "cache")
    cache.path.write_bytes(b"truncated")
    again = ImageCache.build(images, 16, 8, tmp_path / "cache")
    np.testing.assert_array_equal(again[0], load_image(images[0], 16, 8))


def test_pickling_sends_the_path_not_the_pixels(images: list[str], tmp_path: Path) -> None:
    cache = ImageCache.build(images, 16, 8, tmp_path / "cache")
    _ = cache.array
    blob = pickle.dumps(cache)
    assert len(blob) < 1000
    np.testing.assert_array_equal(pickle.loads(blob)[4], cache[4])


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MSAREID_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    assert default_cache_dir("/x/y") == Path("/x/y")
    monkeypatch.delenv("MSAREID_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "msareid"
