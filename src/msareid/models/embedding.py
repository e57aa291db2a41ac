"""The embedding network F (section 3.3): backbone, global average pooling, BNNeck, classifier.

Three levels, as in timm: :meth:`EmbeddingNet.forward_features` gives feature maps,
:meth:`EmbeddingNet.forward_head` the pooled (pre-BNNeck) and BNNeck embeddings and the logits,
:meth:`EmbeddingNet.forward` all of them from images. One F is shared by all four modalities.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from msareid.models.backbones import build_backbone


class Embeddings(NamedTuple):
    """What F gives for a batch: pooled features (triplet loss), BNNeck features (test), logits (ID loss)."""

    pooled: torch.Tensor
    bnneck: torch.Tensor
    logits: torch.Tensor


@contextlib.contextmanager
def _frozen_running_stats(module: nn.Module) -> Iterator[None]:
    """BatchNorm layers normalise with batch statistics but do not update their running ones
    (momentum 0), as during the recomputation of checkpointed activations."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None)
             for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


class EmbeddingNet(nn.Module):
    """Backbone + GAP + BNNeck (BatchNorm1d with a frozen bias) + Linear classifier without bias."""

    def __init__(self, backbone: str = "resnet50", num_classes: int = 395, pretrained: str = "none",
                 last_stride: int = 1, checkpoint_segments: int = 0) -> None:
        super().__init__()
        if checkpoint_segments < 0:
            raise ValueError(f"checkpoint_segments must be 0 or more, got {checkpoint_segments}")
        self.checkpoint_segments = checkpoint_segments
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
        """Feature maps (B, C, h, w).

        With ``checkpoint_segments`` > 0, training keeps only the activations at the borders of that
        many segments of the backbone and recomputes the rest during the backward pass: less memory,
        about one more forward pass of time. The recomputation leaves BatchNorm's running statistics
        alone, so a checkpointed run trains exactly as a plain one.
        """
        if self.checkpoint_segments and self.training and torch.is_grad_enabled():
            layers = list(self.backbone)
            bounds = torch.linspace(0, len(layers), min(self.checkpoint_segments, len(layers)) + 1).round().int()
            x = images
            for i, (start, stop) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist())):
                if getattr(layers[start], "inplace", False):  # it would overwrite the saved segment border
                    layers[start].inplace = False
                segment = nn.Sequential(*layers[start:stop])
                if i == len(bounds) - 2:  # the last segment's activations are needed at once anyway
                    return segment(x)
                x = checkpoint(segment, x, use_reentrant=False, context_fn=self._recompute_contexts)
        return self.backbone(images)

    def _recompute_contexts(self) -> tuple[contextlib.AbstractContextManager, contextlib.AbstractContextManager]:
        return contextlib.nullcontext(), _frozen_running_stats(self.backbone)

    def forward_head(self, maps: torch.Tensor) -> Embeddings:
        """Pooled and BNNeck embeddings (B, C) and logits (B, classes) from feature maps."""
        pooled = self.pool(maps).flatten(1)
        bnneck = self.bnneck(pooled)
        return Embeddings(pooled, bnneck, self.classifier(bnneck))

    def forward(self, images: torch.Tensor) -> Embeddings:
        return self.forward_head(self.forward_features(images))
