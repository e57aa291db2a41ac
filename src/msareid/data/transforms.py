"""Image pipelines for training and testing at the configured size (288 x 144 by default).

Training: resize, Pad 10 + random crop, horizontal flip, ImageNet normalisation, random erasing
(p = 0.5), as in the paper's section 4.1 and the reference code. Test: resize and normalise.
Inputs are uint8 H x W x 3 arrays (from the cache) or PIL images; outputs float CHW tensors.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from msareid.pixels import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "EraseEach", "denormalize", "test_transform", "train_transform",
           "to_uint8_tensor"]


def to_uint8_tensor(image: np.ndarray | Image.Image | torch.Tensor) -> torch.Tensor:
    """A uint8 C x H x W tensor from an H x W x 3 array, a PIL image or a CHW tensor."""
    if isinstance(image, Image.Image):
        image = np.array(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"expected an H x W x 3 image array, got shape {image.shape}")
        if not (image.flags.writeable and image.flags.c_contiguous):
            image = np.array(image)  # torch needs its own writable memory (e.g. not a memory map)
        return torch.from_numpy(image).permute(2, 0, 1)
    return image


class _Resize(torch.nn.Module):
    """Antialiased resize that does nothing when the image already has the size."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        self.size = (height, width)
        self.resize = v2.Resize(self.size, antialias=True)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return img if tuple(img.shape[-2:]) == self.size else self.resize(img)


def train_transform(height: int = 288, width: int = 144, pad: int = 10, erasing: float = 0.5) -> v2.Compose:
    """The training pipeline: resize, pad + random crop, flip, normalise, random erasing
    (``erasing`` = 0 leaves it out, e.g. when it is applied after ISA by :class:`EraseEach`)."""
    return v2.Compose([
        to_uint8_tensor,
        _Resize(height, width),
        v2.Pad(pad),
        v2.RandomCrop((height, width)),
        v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        v2.RandomErasing(p=erasing, value=0),
    ])


class EraseEach:
    """Random erasing (p = ``p``, the same parameters as the loader's) drawn for each image of a
    batch separately, from torch's global generator (saved in checkpoints, so resumes are exact)."""

    def __init__(self, p: float = 0.5) -> None:
        self.eraser = v2.RandomErasing(p=p, value=0)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.eraser(image) for image in batch])


def test_transform(height: int = 288, width: int = 144) -> v2.Compose:
    """The test pipeline: resize and normalise."""
    return v2.Compose([
        to_uint8_tensor,
        _Resize(height, width),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def denormalize(batch: torch.Tensor) -> torch.Tensor:
    """Undo the ImageNet normalisation, giving values in [0, 1] for display."""
    mean = torch.tensor(IMAGENET_MEAN, device=batch.device).view(-1, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=batch.device).view(-1, 1, 1)
    return (batch * std + mean).clamp(0, 1)
