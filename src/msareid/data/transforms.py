"""Image pipelines for training and testing at the configured size (288 x 144 by default).

Training: resize, Pad 10 + random crop, horizontal flip, ImageNet normalisation, random erasing
(p = 0.5), as in the paper's section 4.1 and the reference code. Test: resize and normalise.
Inputs are uint8 H x W x 3 arrays (from the cache) or PIL images; outputs float CHW tensors.

Channel augmentation (CAJ: Ye et al., ICCV 2021) replaces the random erasing with three
pipelines (:func:`channel_aug_transforms`): :class:`ChannelRandomErasing`, :class:`AdaptiveGray`
for IR images and :class:`ChannelExchange` for a second view of each RGB image. Like every
transform here they draw from torch's global generator, which the training dataset seeds for each
sample, so a batch is the same with any number of loader workers and after a resume. Their random
draws follow the reference's: ``uniform(a, b)`` is ``a + (b - a) * torch.rand(())`` and
``randint(a, b)`` includes both ends.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from msareid.pixels import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "AdaptiveGray", "ChannelExchange", "ChannelRandomErasing", "EraseEach",
           "channel_aug_transforms", "denormalize", "test_transform", "train_transform", "to_uint8_tensor"]


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


def _geometry(height: int, width: int, pad: int) -> list:
    """Resize, pad + random crop, flip, normalise: what every training pipeline starts with."""
    return [
        to_uint8_tensor,
        _Resize(height, width),
        v2.Pad(pad),
        v2.RandomCrop((height, width)),
        v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ]


def train_transform(height: int = 288, width: int = 144, pad: int = 10, erasing: float = 0.5) -> v2.Compose:
    """The training pipeline: resize, pad + random crop, flip, normalise, random erasing
    (``erasing`` = 0 leaves it out, e.g. when it is applied after ISA by :class:`EraseEach`)."""
    return v2.Compose([*_geometry(height, width, pad), v2.RandomErasing(p=erasing, value=0)])


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def _randint(low: int, high: int) -> int:
    """An integer of ``low`` .. ``high``, both included (Python's ``random.randint``)."""
    return int(torch.randint(low, high + 1, ()))


class ChannelRandomErasing:
    """CAJ's random erasing, on a normalised 3 x H x W tensor: with probability ``p``, up to 100
    tries at a rectangle of ``area`` (fraction of the image, uniform) and aspect ratio uniform in
    ``[ratio, 1 / ratio]``, sides ``round(sqrt(area x aspect))`` by ``round(sqrt(area / aspect))``;
    the first that fits strictly inside is filled, channel c with ``fill[c]``. As in the reference
    the fill values are constants (0.4914, 0.4822, 0.4465) written into the *normalised* image, not
    the normalised mean colour; a one-channel image gets ``fill[0]``."""

    def __init__(self, p: float = 0.5, area: tuple[float, float] = (0.02, 0.4), ratio: float = 0.3,
                 fill: tuple[float, float, float] = (0.4914, 0.4822, 0.4465), attempts: int = 100) -> None:
        self.p, self.area, self.ratio, self.fill, self.attempts = p, area, ratio, fill, attempts

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if _uniform(0.0, 1.0) > self.p:
            return img
        channels, height, width = img.shape
        for _ in range(self.attempts):
            target = _uniform(*self.area) * height * width
            aspect = _uniform(self.ratio, 1.0 / self.ratio)
            h, w = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if w < width and h < height:
                top, left = _randint(0, height - h), _randint(0, width - w)
                img = img.clone()
                for c in range(3 if channels == 3 else 1):
                    img[c, top : top + h, left : left + w] = self.fill[c]
                return img
        return img


def _one_channel(img: torch.Tensor, channel: int) -> torch.Tensor:
    return img[channel : channel + 1].expand_as(img).clone()


def _luminance(img: torch.Tensor) -> torch.Tensor:
    """The reference's grayscale (ITU-R 601 weights) of the normalised channels, in all three."""
    gray = 0.2989 * img[0] + 0.5870 * img[1] + 0.1140 * img[2]
    return gray.unsqueeze(0).expand_as(img).clone()


class AdaptiveGray:
    """CAJ's adaptive grayscale for IR images: ``randint(0, 3)`` picks R, G or B, copied into all
    three channels (three times in four), or (the fourth case) the luminance grayscale with
    probability ``p`` (``uniform(0, 1) <= p``), else the image unchanged. Computed on the normalised
    tensor, as the reference does."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        choice = _randint(0, 3)
        if choice < 3:
            return _one_channel(img, choice)
        if _uniform(0.0, 1.0) > self.p:
            return img
        return _luminance(img)


class ChannelExchange:
    """CAJ's channel exchange for the second RGB view: ``randint(0, gray)`` picks R, G or B, copied
    into all three channels; a pick above 2 would give the luminance grayscale, but the reference
    uses ``gray = 2``, so that branch is never reached (kept, as there, for ``gray`` > 2)."""

    def __init__(self, gray: int = 2) -> None:
        self.gray = gray

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        choice = _randint(0, self.gray)
        return _one_channel(img, choice) if choice < 3 else _luminance(img)


def channel_aug_transforms(height: int = 288, width: int = 144,
                           pad: int = 10) -> tuple[v2.Compose, v2.Compose, v2.Compose]:
    """CAJ's three training pipelines, in the reference's order after normalisation: RGB view 1
    (channel random erasing), RGB view 2 (channel random erasing, then channel exchange; its own
    crop and flip) and IR (channel random erasing, then adaptive grayscale). No other erasing."""
    rgb = v2.Compose([*_geometry(height, width, pad), ChannelRandomErasing(0.5)])
    rgb_second = v2.Compose([*_geometry(height, width, pad), ChannelRandomErasing(0.5), ChannelExchange(2)])
    ir = v2.Compose([*_geometry(height, width, pad), ChannelRandomErasing(0.5), AdaptiveGray(0.5)])
    return rgb, rgb_second, ir


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
