"""The two attention modules of DDAG (Ye et al., "Dynamic Dual-Attentive Aggregation Learning for
Visible-Infrared Person Re-Identification", ECCV 2020), the third system of the MSA paper's Table 3.

- :class:`PartAggregation` (IWPA, intra-modality weighted-part aggregation): the last feature map
  pooled into horizontal parts, a part-relation attention over them, the parts summed with
  learnable weights, added to F's BNNeck feature and normalised by a BNNeck of its own. It is part
  of F: its feature is DDAG's test feature.
- :class:`GraphAttention` (CGSA, cross-modality graph structured attention): graph attention heads
  over the training batch, whose nodes are the images and whose edges join images of one identity
  (:func:`label_adjacency`), then an output layer over the classes; trained with the graph loss,
  never run at test time.

Both follow the reference implementation (mangye16/DDAG), including where it departs from the
paper's text: the part attention has no residual convolution (the reference builds a zero-initialised
``W`` but never applies it, so it is left out here; the parameter count of ``configs/sysu_ddag.toml``
is the reference's trained parameters), the part weights go through a softmax, and the graph's
adjacency only matters through its non-zero pattern. Both compute in float32 under mixed precision
(2048-wide dot products overflow half precision).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

GRAPH_HEADS = 4  # the reference's attention heads
GRAPH_DIM = 512  # the reference's --low-dim: the width of each head
GRAPH_DROPOUT = 0.2  # the reference's --drop
GRAPH_SLOPE = 0.2  # LeakyReLU slope of the attention scores (the reference's alpha)
MASKED = -9e15  # the score of a pair of images that are not neighbours (softmax weight 0)


@contextlib.contextmanager
def _float32(device: torch.device) -> Iterator[None]:
    """No autocast inside: the caller casts half-precision inputs with :func:`_full`."""
    with torch.autocast(device_type=device.type, enabled=False):
        yield


def _full(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 when autocast made it half precision; float32 and float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def part_stripes(maps: torch.Tensor, parts: int) -> torch.Tensor:
    """Average of each of ``parts`` horizontal stripes of the maps (B, C, h, w) -> (B, C, parts):
    ``adaptive_avg_pool2d(maps, (parts, 1))``, stripe i spanning rows floor(i h / P) to
    ceil((i + 1) h / P), written with slices so that it exports to ONNX at any map height."""
    h = maps.shape[2]  # non-negative operands only: an exported graph's integer division truncates
    bounds = [((i * h) // parts, ((i + 1) * h + parts - 1) // parts) for i in range(parts)]
    return torch.stack([maps[:, :, start:stop].mean(dim=(2, 3)) for start, stop in bounds], dim=2)


class PartAggregation(nn.Module):
    """IWPA: ``parts`` horizontal part features of the last feature map, refined by attention over
    the parts of the same image, then a weighted sum, a residual with F's BNNeck feature and a
    BNNeck.

    For parts ``p_1..p_P`` (average pooling of P horizontal stripes, C channels each) and 1x1
    projections ``q, k, v`` (C -> C, with bias)::

        A = softmax_row(q(p)^T k(p))            (P x P, no scaling)
        r = A v(p)^T                            (P x C: each part a mixture of all parts)
        x = sum_i softmax(w)_i r_i + bnneck     (w: learnable, initialised to 1 / P)
        part feature = BatchNorm(x)             (weight ~ N(1, 0.01), bias 0 and frozen)
    """

    def __init__(self, channels: int, parts: int = 3) -> None:
        super().__init__()
        if parts < 1:
            raise ValueError(f"parts must be 1 or more, got {parts}")
        self.parts = parts
        self.query = nn.Conv2d(channels, channels, 1)
        self.key = nn.Conv2d(channels, channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.part_weights = nn.Parameter(torch.full((parts,), 1.0 / parts))
        self.bnneck = nn.BatchNorm1d(channels)
        nn.init.normal_(self.bnneck.weight, 1.0, 0.01)
        nn.init.zeros_(self.bnneck.bias)
        self.bnneck.bias.requires_grad_(False)

    def forward(self, maps: torch.Tensor, global_feature: torch.Tensor) -> torch.Tensor:
        """Part-aggregated features (B, C) from feature maps (B, C, h, w) and F's BNNeck features (B, C)."""
        with _float32(maps.device):
            stripes = part_stripes(_full(maps), self.parts).unsqueeze(-1)  # B, C, P, 1
            q = self.query(stripes).flatten(2).transpose(1, 2)  # B, P, C
            k = self.key(stripes).flatten(2)  # B, C, P
            v = self.value(stripes).flatten(2).transpose(1, 2)  # B, P, C
            attention = torch.softmax(q @ k, dim=-1)  # B, P, P
            refined = attention @ v  # B, P, C: each part a mixture of all parts
            # sum over parts of weight x part, written without a transpose before the product (ONNX
            # Runtime's fused transpose-matmul with a vector operand computes it wrongly)
            aggregated = torch.softmax(self.part_weights, dim=0) @ refined  # B, C
            return self.bnneck(aggregated + _full(global_feature))


def label_adjacency(labels: torch.Tensor) -> torch.Tensor:
    """The graph of a training batch as the reference builds it (DDAG Eq. 6): ``A = Y Y^T + I`` for
    one-hot labels ``Y`` (images of one identity are neighbours, whatever their modality; the
    diagonal is 2), each row divided by its L2 norm. (N,) -> (N, N), float32."""
    same = (labels[:, None] == labels[None, :]).float()
    adjacency = same + torch.eye(labels.shape[0], device=labels.device)
    return adjacency / adjacency.pow(2).sum(dim=1, keepdim=True).sqrt()


class GraphAttentionLayer(nn.Module):
    """One graph attention layer (Velickovic et al., 2018) as the reference computes it::

        h = x W                                            (N x out)
        e_ij = LeakyReLU(a^T [h_i || h_j])   where A_ij > 0, else -9e15
        out = dropout(softmax_row(e)) h                    (ELU after it when ``activate``)

    ``a^T [h_i || h_j]`` is computed as ``a_1^T h_i + a_2^T h_j`` (the same sum, without the
    N^2 x 2 out concatenation). ``W`` and ``a`` are Xavier-uniform with gain 1.414.
    """

    def __init__(self, in_features: int, out_features: int, dropout: float = GRAPH_DROPOUT,
                 slope: float = GRAPH_SLOPE, activate: bool = True) -> None:
        super().__init__()
        self.dropout, self.slope, self.activate = dropout, slope, activate
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.attention = nn.Parameter(torch.empty(2 * out_features, 1))
        nn.init.xavier_uniform_(self.weight, gain=1.414)
        nn.init.xavier_uniform_(self.attention, gain=1.414)

    @property
    def out_features(self) -> int:
        return self.weight.shape[1]

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        h = x @ self.weight
        n = self.out_features
        scores = F.leaky_relu(h @ self.attention[:n] + (h @ self.attention[n:]).t(), self.slope)
        scores = scores.masked_fill(adjacency <= 0, MASKED)
        weights = F.dropout(torch.softmax(scores, dim=1), self.dropout, self.training)
        out = weights @ h
        return F.elu(out) if self.activate else out


class GraphAttention(nn.Module):
    """CGSA: ``heads`` graph attention layers (``dim`` wide, ELU, concatenated) over the batch's
    pooled features, then an output layer to ``num_classes`` scores, ELU and log-softmax; dropout
    before each. Its output's NLL is the graph loss (DDAG Eq. 9). Training only."""

    def __init__(self, in_features: int, num_classes: int, heads: int = GRAPH_HEADS, dim: int = GRAPH_DIM,
                 dropout: float = GRAPH_DROPOUT, slope: float = GRAPH_SLOPE) -> None:
        super().__init__()
        self.dropout = dropout
        self.heads = nn.ModuleList(GraphAttentionLayer(in_features, dim, dropout, slope) for _ in range(heads))
        self.out = GraphAttentionLayer(dim * heads, num_classes, dropout, slope, activate=False)

    def forward(self, pooled: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """Log-probabilities over the classes (N, classes) of the N pooled features (N, C)."""
        with _float32(pooled.device):
            x = F.dropout(_full(pooled), self.dropout, self.training)
            x = torch.cat([head(x, adjacency) for head in self.heads], dim=1)
            x = F.dropout(x, self.dropout, self.training)
            return F.log_softmax(F.elu(self.out(x, adjacency)), dim=1)
