"""The MSA network (Fig. 2a): the shared embedding net F and the optional ISA modules R2I and I2R.

With neither module it is the baseline of Table 4 (F on the RGB and IR images only).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from msareid.models.embedding import IR, RGB, EmbeddingNet, Embeddings, Modalities
from msareid.models.style import StyleAdapter

ISA_SPACES = ("normalized", "unit")
GENERATED_STEMS = ("target", "source")
# Stem of each generated modality: (its target's, its source's).
_STEM_OF = {"r2i": (IR, RGB), "i2r": (RGB, IR)}


class MSANet(nn.Module):
    """F plus ``r2i`` (RGB -> R2I) and ``i2r`` (IR -> I2R) style adapters; at test time only F runs.

    ``isa_space`` is the pixel space in which ISA (Eq. 1) and the image losses (Eq. 4-9) work, a
    choice the paper leaves open: ``"normalized"`` uses F's input tensors as they are;
    ``"unit"`` maps them back to [0, 1] images with ``pixel_mean`` / ``pixel_std`` (the
    normalisation the data pipeline applied) and normalises the generated images again before F.

    ``generated_stem`` matters only for a two-stream F: ``"target"`` sends R2I
    through the IR stem and I2R through the RGB stem, the modality whose style ISA imitates and
    whose local statistics SSL pulls the images towards (Eq. 4-6), so each stem keeps seeing one
    style; ``"source"`` sends each through the stem of the images it was made from.

    Systems may add further modules that serve training only (``msareid.systems``), as ISA does.
    """

    def __init__(self, embed: EmbeddingNet, r2i: bool = True, i2r: bool = True, isa_init: str = "default",
                 isa_space: str = "normalized", pixel_mean: Sequence[float] | None = None,
                 pixel_std: Sequence[float] | None = None, generated_stem: str = "target") -> None:
        super().__init__()
        if isa_space not in ISA_SPACES:
            raise ValueError(f"isa_space must be one of {ISA_SPACES}, got {isa_space!r}")
        if generated_stem not in GENERATED_STEMS:
            raise ValueError(f"generated_stem must be one of {GENERATED_STEMS}, got {generated_stem!r}")
        self.generated_stem = generated_stem
        if isa_space == "unit" and (pixel_mean is None or pixel_std is None):
            raise ValueError("isa_space = 'unit' needs pixel_mean and pixel_std (the input normalisation)")
        self.embed = embed
        self.isa_space = isa_space
        self.r2i = StyleAdapter(init=isa_init) if r2i else None
        self.i2r = StyleAdapter(init=isa_init) if i2r else None
        mean = torch.tensor(pixel_mean if pixel_mean is not None else (0.0, 0.0, 0.0)).view(1, -1, 1, 1)
        std = torch.tensor(pixel_std if pixel_std is not None else (1.0, 1.0, 1.0)).view(1, -1, 1, 1)
        self.register_buffer("pixel_mean", mean, persistent=False)  # not in state dicts: a setting
        self.register_buffer("pixel_std", std, persistent=False)

    def to_isa_space(self, images: torch.Tensor) -> torch.Tensor:
        """F's input tensors in the space where ISA and SSC work."""
        if self.isa_space == "normalized":
            return images
        return images * self.pixel_std.to(images.dtype) + self.pixel_mean.to(images.dtype)

    def from_isa_space(self, images: torch.Tensor) -> torch.Tensor:
        """Images of the ISA space as F's input tensors."""
        if self.isa_space == "normalized":
            return images
        return (images - self.pixel_mean.to(images.dtype)) / self.pixel_std.to(images.dtype)

    def adapt(self, rgb: torch.Tensor, ir: torch.Tensor) -> dict[str, torch.Tensor]:
        """The generated modalities (Eq. 1) present in this model: ``{"r2i": ..., "i2r": ...}``.

        Inputs and outputs are in the ISA space (see :meth:`to_isa_space`).
        """
        out = {}
        if self.r2i is not None:
            out["r2i"] = self.r2i(rgb)
        if self.i2r is not None:
            out["i2r"] = self.i2r(ir)
        return out

    def stem_of(self, name: str) -> int:
        """The stem (RGB = 0, IR = 1) that images of modality ``name`` (rgb, ir, r2i, i2r) go through."""
        if name in _STEM_OF:
            return _STEM_OF[name][0 if self.generated_stem == "target" else 1]
        return {"rgb": RGB, "ir": IR}[name]

    def modalities(self, per_block: int, generated: Sequence[str]) -> torch.Tensor | None:
        """The stem of each image of F's training batch (blocks RGB, IR, then each of ``generated``:
        a generated modality, or ``rgb`` / ``ir`` for a further block of real images; ``per_block``
        images each); None for a one-stream F."""
        if not self.embed.two_stream:
            return None
        stems = [self.stem_of(name) for name in ("rgb", "ir", *generated)]
        return torch.tensor(stems, device=self.pixel_mean.device).repeat_interleave(per_block)

    def forward(self, images: torch.Tensor, modality: Modalities = None) -> Embeddings:
        """F on real RGB or IR images (what test-time feature extraction uses); ``modality`` (RGB = 0,
        IR = 1, one int or one an image) is needed by a two-stream F."""
        return self.embed(images, modality)
