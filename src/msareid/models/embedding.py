"""The embedding network F (section 3.3): backbone, global average pooling, BNNeck, classifier.

Three levels, as in timm: :meth:`EmbeddingNet.forward_features` gives feature maps,
:meth:`EmbeddingNet.forward_head` the pooled (pre-BNNeck) and BNNeck embeddings and the logits,
:meth:`EmbeddingNet.forward` all of them from images. One F is shared by all four modalities.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from msareid.models.backbones import build_backbone


class Embeddings(NamedTuple):
    """What F gives for a batch: pooled features (triplet loss), BNNeck features (test), logits (ID loss)."""

    pooled: torch.Tensor
    bnneck: torch.Tensor
    logits: torch.Tensor


class EmbeddingNet(nn.Module):
    """Backbone + GAP + BNNeck (BatchNorm1d with a frozen bias) + Linear classifier without bias."""

    def __init__(self, backbone: str = "resnet50", num_classes: int = 395, pretrained: str = "none",
                 last_stride: int = 1) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.backbone_name = backbone
        self.backbone, self.feature_dim = build_backbone(backbone, pretrained, last_stride)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.bnneck = nn.BatchNorm1d(self.feature_dim)
        self.bnneck.bias.requires_grad_(False)  # BNNeck: a shift would only move every class together
        self.classifier = nn.Linear(self.feature_dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    @property
    def num_classes(self) -> int:
        return self.classifier.out_features

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Feature maps (B, C, h, w)."""
        return self.backbone(images)

    def forward_head(self, maps: torch.Tensor) -> Embeddings:
        """Pooled and BNNeck embeddings (B, C) and logits (B, classes) from feature maps."""
        pooled = self.pool(maps).flatten(1)
        bnneck = self.bnneck(pooled)
        return Embeddings(pooled, bnneck, self.classifier(bnneck))

    def forward(self, images: torch.Tensor) -> Embeddings:
        return self.forward_head(self.forward_features(images))
