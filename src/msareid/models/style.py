"""Image style adaptation (ISA, section 3.1, Eq. 1): X_a = D(C(X_s)).

C is a 3x3 convolution and D a 3x3 transposed convolution, both without padding, so the output has
the input's size. Two separate modules are trained: RGB -> R2I and IR -> I2R.
"""

from __future__ import annotations

import torch
from torch import nn

ISA_INITS = ("dirac", "default")


class StyleAdapter(nn.Module):
    """One ISA module (Eq. 1).

    ``init = "dirac"`` (our choice; the paper does not say) starts both layers as identities, so
    training begins from X_a = X_s inside a one-pixel border (the border starts at zero) and the
    losses move the style from there; ``"default"`` keeps PyTorch's random initialisation.
    """

    def __init__(self, channels: int = 3, kernel_size: int = 3, init: str = "dirac") -> None:
        super().__init__()
        if init not in ISA_INITS:
            raise ValueError(f"init must be one of {ISA_INITS}, got {init!r}")
        self.conv = nn.Conv2d(channels, channels, kernel_size, padding=0)
        self.deconv = nn.ConvTranspose2d(channels, channels, kernel_size, padding=0)
        if init == "dirac":
            for layer in (self.conv, self.deconv):
                nn.init.dirac_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.conv(images))
