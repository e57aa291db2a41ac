"""The pieces of AGW's network (Ye et al., TPAMI 2021; the network of the MSA paper's Table 3):
non-local attention blocks and generalised-mean (GeM) pooling with a fixed p = 3.

The third piece, the modality-specific stem, is a split of the backbone made in
:mod:`msareid.models.embedding`; the weighted regularised triplet loss is in
:mod:`msareid.losses.feature`.
"""

from __future__ import annotations

import torch
from torch import nn

NON_LOCAL = ("off", "one", "half")  # no blocks | one inner channel (the reference's default) | in_channels // 2
POOLINGS = ("avg", "gem")


def non_local_channels(mode: str, in_channels: int) -> int:
    """Inner channels of a non-local block: ``"one"`` reproduces the reference, whose
    ``inter_channels = reduc_ratio // reduc_ratio`` is always 1; ``"half"`` is the usual in_channels // 2."""
    if mode == "one":
        return 1
    if mode == "half":
        return max(1, in_channels // 2)
    raise ValueError(f"non_local must be one of {NON_LOCAL[1:]} for a block, got {mode!r}")


class NonLocal(nn.Module):
    """A non-local block with dot-product attention normalised by the number of positions:
    ``z = x + W(f(x) g(x) / N)`` with ``f = theta(x)^T phi(x)``, no softmax; ``W`` is a 1x1
    convolution followed by a BatchNorm initialised to zero, so a new block is the identity.

    Without a softmax the product is associative, so ``theta (phi^T g) / N`` is computed instead of
    ``(theta phi^T) g / N``: the same values up to float rounding, in O(N i^2) instead of O(N^2 i)
    for N positions and i inner channels (the reference's one channel makes it nearly free).
    """

    def __init__(self, in_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.in_channels, self.inter_channels = in_channels, inter_channels
        self.g = nn.Conv2d(in_channels, inter_channels, 1)
        self.theta = nn.Conv2d(in_channels, inter_channels, 1)
        self.phi = nn.Conv2d(in_channels, inter_channels, 1)
        self.W = nn.Sequential(nn.Conv2d(inter_channels, in_channels, 1), nn.BatchNorm2d(in_channels))
        nn.init.zeros_(self.W[1].weight)
        nn.init.zeros_(self.W[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        n = h * w
        g = self.g(x).flatten(2).transpose(1, 2)  # b, N, i
        theta = self.theta(x).flatten(2).transpose(1, 2)  # b, N, i
        phi = self.phi(x).flatten(2)  # b, i, N
        y = theta @ ((phi @ g) / n)  # b, N, i
        y = y.transpose(1, 2).reshape(b, self.inter_channels, h, w)
        return x + self.W(y)


def gem(maps: torch.Tensor, p: float = 3.0) -> torch.Tensor:
    """Generalised-mean pooling with a fixed ``p``, as the reference computes it:
    ``(mean over positions of x^p + 1e-12)^(1/p)`` per channel, no clamp (the maps follow a ReLU).
    Computed in float32 (x^3 overflows half precision). (B, C, h, w) -> (B, C)."""
    x = maps.float().flatten(2)
    return (x.pow(p).mean(dim=-1) + 1e-12).pow(1.0 / p)


class GeM(nn.Module):
    """:func:`gem` as a module (``p`` is fixed, not learned, as in the reference)."""

    def __init__(self, p: float = 3.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return gem(maps, self.p)
