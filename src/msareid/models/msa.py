"""The MSA network (Fig. 2a): the shared embedding net F and the optional ISA modules R2I and I2R.

With neither module it is the baseline of Table 4 (F on the RGB and IR images only).
"""

from __future__ import annotations

import torch
from torch import nn

from msareid.models.embedding import EmbeddingNet, Embeddings
from msareid.models.style import StyleAdapter


class MSANet(nn.Module):
    """F plus ``r2i`` (RGB -> R2I) and ``i2r`` (IR -> I2R) style adapters; at test time only F runs."""

    def __init__(self, embed: EmbeddingNet, r2i: bool = True, i2r: bool = True, isa_init: str = "dirac") -> None:
        super().__init__()
        self.embed = embed
        self.r2i = StyleAdapter(init=isa_init) if r2i else None
        self.i2r = StyleAdapter(init=isa_init) if i2r else None

    def adapt(self, rgb: torch.Tensor, ir: torch.Tensor) -> dict[str, torch.Tensor]:
        """The generated modalities (Eq. 1) present in this model: ``{"r2i": ..., "i2r": ...}``."""
        out = {}
        if self.r2i is not None:
            out["r2i"] = self.r2i(rgb)
        if self.i2r is not None:
            out["i2r"] = self.i2r(ir)
        return out

    def forward(self, images: torch.Tensor) -> Embeddings:
        """F on real RGB or IR images (what test-time feature extraction uses)."""
        return self.embed(images)
