"""Torch datasets over the image cache: single images for testing, (RGB, IR) pairs for training."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from msareid.data.cache import ImageCache
from msareid.data.sampler import CrossModalitySampler

Transform = Callable[[np.ndarray], torch.Tensor]


class ImageDataset(Dataset):
    """Images of one cache with their labels, through ``transform``."""

    def __init__(self, images: ImageCache, labels: np.ndarray, transform: Transform) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.transform = images, np.asarray(labels), transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(np.asarray(self.images[index])), int(self.labels[index])


class PairedDataset(Dataset):
    """Indexed by (rgb index, ir index): both images and both labels (one identity)."""

    def __init__(self, rgb: ImageDataset, ir: ImageDataset) -> None:
        self.rgb, self.ir = rgb, ir

    def __len__(self) -> int:
        return max(len(self.rgb), len(self.ir))

    def __getitem__(self, pair: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        x_rgb, y_rgb = self.rgb[pair[0]]
        x_ir, y_ir = self.ir[pair[1]]
        return x_rgb, x_ir, y_rgb, y_ir


def train_loader(
    dataset: PairedDataset, sampler: CrossModalitySampler, num_workers: int, seed: int
) -> DataLoader:
    """A loader yielding (rgb, ir, rgb_labels, ir_labels) batches in the sampler's order.

    The worker seeds come from a generator seeded with ``seed``, so augmentations are reproducible.
    """
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        generator=generator,
        persistent_workers=num_workers > 0,
    )
