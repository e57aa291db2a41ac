"""Torch datasets over the image cache: single images for testing, (RGB, IR) pairs for training."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from msareid.data.cache import ImageCache
from msareid.data.sampler import CrossModalitySampler
from msareid.threads import single_threaded_worker

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
        return self.transform(np.array(self.images[index])), int(self.labels[index])


class PairedDataset(Dataset):
    """Indexed by (rgb index, ir index, seed): both images and labels (one identity), and with
    ``rgb_second`` a second view of the RGB image through that transform (channel augmentation),
    by name: ``rgb``, ``ir``, ``rgb_label``, ``ir_label`` (and ``rgb_second``).

    The augmentations of the pair draw from a torch generator seeded with ``seed`` (forked, so the
    caller's random state is untouched), RGB first, then the second RGB view, then IR: the result
    does not depend on which worker loads it.
    """

    def __init__(self, rgb: ImageDataset, ir: ImageDataset, rgb_second: Transform | None = None) -> None:
        self.rgb, self.ir, self.rgb_second = rgb, ir, rgb_second

    def __len__(self) -> int:
        return max(len(self.rgb), len(self.ir))

    def __getitem__(self, item: tuple[int, int, int]) -> dict[str, torch.Tensor | int]:
        i_rgb, i_ir, seed = item
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            x_rgb, y_rgb = self.rgb[i_rgb]
            second = None if self.rgb_second is None else self.rgb_second(np.array(self.rgb.images[i_rgb]))
            x_ir, y_ir = self.ir[i_ir]
        sample = {"rgb": x_rgb, "ir": x_ir, "rgb_label": y_rgb, "ir_label": y_ir}
        return sample if second is None else {**sample, "rgb_second": second}


def train_loader(
    dataset: PairedDataset, sampler: CrossModalitySampler, num_workers: int
) -> DataLoader:
    """A loader yielding batches in the sampler's order, dicts of :class:`PairedDataset`'s names.

    The loader draws its workers' base seed from a generator of its own, never from torch's global
    one: augmentations are seeded per sample, and the global generator belongs to the model's random
    layers (e.g. dropout), whose draws must not depend on where an epoch's iterator was created (a
    run resumed mid-epoch creates it at that step)."""
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                      persistent_workers=num_workers > 0, generator=torch.Generator().manual_seed(0),
                      worker_init_fn=single_threaded_worker if num_workers > 0 else None)
