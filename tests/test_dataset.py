from pathlib import Path

import numpy as np
import pytest
import torch

from msareid.data.cache import ImageCache
from msareid.data.dataset import ImageDataset, PairedDataset, train_loader
from msareid.data.records import label_map, labels_of
from msareid.data.sampler import CrossModalitySampler
from msareid.data.sysu import SysuMM01
from msareid.data.transforms import train_transform


def test_training_batches_from_the_cache(synth_sysu: Path, tmp_path: Path) -> None:
    rgb, ir = SysuMM01(synth_sysu).train()
    mapping = label_map(rgb + ir)
    tf = train_transform(32, 16)
    data = PairedDataset(
        ImageDataset(ImageCache.build([r.path for r in rgb], 32, 16, tmp_path), labels_of(rgb, mapping), tf),
        ImageDataset(ImageCache.build([r.path for r in ir], 32, 16, tmp_path), labels_of(ir, mapping), tf),
    )
    sampler = CrossModalitySampler(data.rgb.labels, data.ir.labels, 3, 2, seed=0)
    batches = list(train_loader(data, sampler, num_workers=0))
    assert len(batches) == len(sampler)
    assert list(batches[0]) == ["rgb", "ir", "rgb_label", "ir_label"]  # batches by name
    x_rgb, x_ir, y_rgb, y_ir = batches[0].values()
    assert x_rgb.shape == x_ir.shape == (6, 3, 32, 16)
    assert torch.equal(y_rgb, y_ir) and len(set(y_rgb.tolist())) == 3
    torch.manual_seed(123)  # the caller's random state plays no part
    again = list(train_loader(data, sampler, num_workers=2))
    for a, b in zip(batches, again, strict=True):  # same sampler seed, same augmented pixels
        assert all(torch.equal(a[k], b[k]) for k in a)
    sampler.set_epoch(1)
    assert not torch.equal(next(iter(train_loader(data, sampler, num_workers=0)))["rgb"], x_rgb)


def test_dataset_length_mismatch(synth_sysu: Path, tmp_path: Path) -> None:
    rgb, _ = SysuMM01(synth_sysu).train()
    cache = ImageCache.build([r.path for r in rgb[:3]], 16, 8, tmp_path)
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        ImageDataset(cache, np.zeros(2), train_transform(16, 8))
