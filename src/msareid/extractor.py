"""``msareid.FeatureExtractor``: features of images from a trained checkpoint, from Python."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from msareid import threads
from msareid.data.cache import fit_image, load_image
from msareid.errors import UserError
from msareid.inference import extract, load_trained
from msareid.training.distributed import resolve_device

ImageLike = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor


class FeatureExtractor:
    """Embeds images with a trained network.

    >>> fx = FeatureExtractor("runs/msa/last.pt")      # doctest: +SKIP
    >>> feats = fx(["a.jpg", "b.png"])                  # (2, D) BNNeck features, L2-normalised

    ``feature``: ``"auto"`` (the model's test feature: BNNeck, or the feature head a system made the
    test feature), ``"bnneck"``, ``"pooled"`` or the name of one of the model's feature heads
    (e.g. ``"part"``).

    Inputs may be paths, PIL images, uint8 H x W x 3 arrays, or tensors (uint8 C x H x W, or
    float C x H x W in [0, 1]); each is resized to the model's training size and normalised.
    """

    def __init__(self, checkpoint: str | os.PathLike, device: str = "auto", batch_size: int = 64,
                 flip: bool = False, feature: str = "auto", normalize: bool = True) -> None:
        threads.configure()
        self.device = resolve_device(device)
        self.model, self.config, _ = load_trained(checkpoint, self.device)
        if feature == "auto":  # the BNNeck feature, or the head a system made the test feature
            feature = self.model.embed.test_feature
        if feature not in self.model.embed.feature_names:
            raise UserError(f"{checkpoint}: feature {feature!r} is not one of this model's: auto, "
                            f"{', '.join(self.model.embed.feature_names)}")
        self.batch_size, self.flip, self.feature, self.normalize = batch_size, flip, feature, normalize
        self.height, self.width = self.config.data.height, self.config.data.width

    @property
    def model_id(self) -> str:
        """A fingerprint of the weights (SHA-256 of the state dict's tensors, 16 hex digits): feature
        files carry it, so a gallery searched with another model can be told apart."""
        import hashlib

        digest = hashlib.sha256()
        for name, value in sorted(self.model.embed.state_dict().items()):
            digest.update(name.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    @property
    def dim(self) -> int:
        """Feature dimension."""
        return self.model.embed.feature_dim

    def _array(self, item: ImageLike) -> np.ndarray:
        h, w = self.height, self.width
        if isinstance(item, (str, os.PathLike)):
            return load_image(str(item), h, w)
        if isinstance(item, Image.Image):
            return fit_image(item, h, w)
        if isinstance(item, torch.Tensor):
            t = item.detach().cpu()
            if t.ndim != 3 or t.shape[0] != 3:
                raise UserError(f"expected a 3 x H x W tensor, got shape {tuple(t.shape)}")
            if t.is_floating_point():
                t = (t.clamp(0, 1) * 255).round()
            item = t.to(torch.uint8).permute(1, 2, 0).numpy()
        arr = np.asarray(item)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise UserError(f"expected an H x W x 3 uint8 image array, got {arr.shape} {arr.dtype}")
        return arr if arr.shape[:2] == (h, w) else fit_image(Image.fromarray(arr), h, w)

    def __call__(self, images: Sequence[ImageLike] | ImageLike,
                 modality: str | Sequence[str] | None = None) -> np.ndarray:
        """Features of ``images`` (one image or a sequence), N x D float32. ``modality`` ("rgb" or
        "ir", one for all or one an image) is needed by a model with a stem for each modality."""
        if isinstance(images, (str, os.PathLike, Image.Image, np.ndarray, torch.Tensor)) and not (
            isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4
        ):
            images = [images]
        arrays = [self._array(x) for x in images]
        modalities = [modality] * len(arrays) if isinstance(modality, str) else modality
        if modalities is not None and len(modalities) != len(arrays):
            raise UserError(f"{len(modalities)} modalities for {len(arrays)} images")
        feats = extract(self.model, arrays, self.height, self.width, self.batch_size, self.flip, self.device,
                        modalities=modalities)
        out = feats.tables()[self.feature]
        if self.normalize:
            out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def list_images(folder: str | os.PathLike) -> list[str]:
    """Every image under ``folder`` (recursively), sorted."""
    root = Path(folder)
    paths = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise UserError(f"{root} holds no images (.jpg, .jpeg, .png, .bmp)")
    return paths
