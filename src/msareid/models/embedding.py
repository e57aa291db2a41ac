"""The embedding network F (section 3.3): backbone, global average pooling, BNNeck, classifier.

Three levels, as in timm: :meth:`EmbeddingNet.forward_features` gives feature maps,
:meth:`EmbeddingNet.forward_head` the pooled (pre-BNNeck) and BNNeck embeddings and the logits,
:meth:`EmbeddingNet.forward` all of them from images. One F is shared by all four modalities.

Options that other systems' networks use (the paper's Table 3): ``two_stream`` (a stem of its own
for RGB and for IR images, the rest shared), ``non_local`` blocks in the middle stages and
``pooling = "gem"``. A two-stream F needs to know each image's modality (:data:`RGB`, :data:`IR`).
A system may add a feature head (:meth:`EmbeddingNet.add_feature_head`): a further feature from the
feature maps and the BNNeck feature, classified by the same classifier, possibly the test feature.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from msareid.models.agw import NON_LOCAL, POOLINGS, GeM, NonLocal, non_local_channels
from msareid.models.backbones import BACKBONES, build_backbone

RGB, IR = 0, 1  # stem of each modality in a two-stream F
# Non-local blocks after the last blocks of each stage, as the reference places them (layer2: 2, layer3: 3).
NON_LOCAL_PER_STAGE = (0, 2, 3, 0)
Modalities = torch.Tensor | int | Sequence[int] | None
_NONE: Mapping[str, torch.Tensor] = MappingProxyType({})


class Embeddings(NamedTuple):
    """What F gives for a batch: pooled features (triplet loss), BNNeck features (test), logits (ID
    loss); with feature heads, each head's features and their logits by the head's name."""

    pooled: torch.Tensor
    bnneck: torch.Tensor
    logits: torch.Tensor
    extra: Mapping[str, torch.Tensor] = _NONE
    extra_logits: Mapping[str, torch.Tensor] = _NONE


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
                 last_stride: int = 1, checkpoint_segments: int = 0, two_stream: bool = False,
                 non_local: str = "off", pooling: str = "avg") -> None:
        super().__init__()
        if checkpoint_segments < 0:
            raise ValueError(f"checkpoint_segments must be 0 or more, got {checkpoint_segments}")
        self.checkpoint_segments = checkpoint_segments
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if non_local not in NON_LOCAL or pooling not in POOLINGS:
            raise ValueError(f"non_local must be one of {NON_LOCAL} and pooling one of {POOLINGS}, "
                             f"got {non_local!r}, {pooling!r}")
        spec = BACKBONES.get(backbone)
        if (two_stream and not (spec and spec.stem)) or (non_local != "off" and not (spec and spec.stages)):
            offered = [n for n, b in BACKBONES.items() if b.stem and b.stages]
            raise ValueError(f"two_stream and non_local need a backbone with a stem and stages: {offered}; "
                             f"got {backbone!r}")
        self.backbone_name = backbone
        body, self.feature_dim = build_backbone(backbone, pretrained, last_stride)
        if non_local != "off":
            _insert_non_local(body, spec.stages(body), non_local)
        self.stems: nn.ModuleList | None = None
        if two_stream:  # both stems start from the same weights (the reference loads ImageNet into each)
            stem = nn.Sequential(*list(body)[: spec.stem])
            self.stems = nn.ModuleList([stem, copy.deepcopy(stem)])
            body = nn.Sequential(*list(body)[spec.stem:])
        self.backbone = body  # the whole body, or the shared part after the stems
        self.pool = GeM() if pooling == "gem" else nn.AdaptiveAvgPool2d(1)
        self.bnneck = nn.BatchNorm1d(self.feature_dim)
        self.bnneck.bias.requires_grad_(False)  # BNNeck: a shift would only move every class together
        self.classifier = nn.Linear(self.feature_dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)
        self.feature_heads: dict[str, nn.Module] = {}  # registered as submodules "<name>_head"
        self.test_feature = "bnneck"  # the feature a search uses: "bnneck" or a head's name

    def add_feature_head(self, name: str, head: nn.Module, test_feature: bool = False) -> None:
        """A further feature ``head(maps, bnneck)`` (B, C), classified by F's classifier; with
        ``test_feature`` it becomes the feature searches use. Its weights are ``<name>_head.*``."""
        if name in ("pooled", "bnneck") or name in self.feature_heads:
            raise ValueError(f"F already has a feature called {name!r}")
        self.add_module(f"{name}_head", head)
        self.feature_heads[name] = head
        if test_feature:
            self.test_feature = name

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Every feature F gives, by name: ``pooled``, ``bnneck``, then each head's."""
        return ("pooled", "bnneck", *self.feature_heads)

    @property
    def num_classes(self) -> int:
        return self.classifier.out_features

    @property
    def two_stream(self) -> bool:
        """Whether RGB and IR images go through stems of their own (then they need a modality)."""
        return self.stems is not None

    def _stems(self, images: torch.Tensor, modality: Modalities) -> torch.Tensor:
        """Each image through the stem of its modality; BatchNorm statistics of a stem come from its
        own modality's images only, as in the reference's separate visible and thermal modules."""
        assert self.stems is not None
        if modality is None:
            raise ValueError("this F has a stem for each modality: pass the images' modality (RGB = 0, IR = 1)")
        if isinstance(modality, int):
            return self.stems[modality](images)
        modality = torch.as_tensor(modality, device=images.device)
        if modality.shape != images.shape[:1]:
            raise ValueError(f"{tuple(modality.shape)} modalities for {images.shape[0]} images")
        out: torch.Tensor | None = None
        for m, stem in enumerate(self.stems):
            index = (modality == m).nonzero().squeeze(1)
            if index.numel() == images.shape[0]:
                return stem(images)
            if index.numel():
                part = stem(images.index_select(0, index))
                if out is None:
                    out = part.new_zeros((images.shape[0], *part.shape[1:]))
                out = out.index_copy(0, index, part)
        if out is None or set(modality.unique().tolist()) - {RGB, IR}:
            raise ValueError(f"modalities must be {RGB} (RGB) or {IR} (IR), got {sorted(set(modality.tolist()))}")
        return out

    def forward_features(self, images: torch.Tensor, modality: Modalities = None) -> torch.Tensor:
        """Feature maps (B, C, h, w). ``modality`` (one int, or one for each image) chooses the stem of a
        two-stream F and is ignored by a one-stream one.

        With ``checkpoint_segments`` > 0, training keeps only the activations at the borders of that
        many segments of the backbone and recomputes the rest during the backward pass: less memory,
        about one more forward pass of time. The recomputation leaves BatchNorm's running statistics
        alone, so a checkpointed run trains exactly as a plain one.
        """
        if self.stems is not None:
            images = self._stems(images, modality)
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
        """Pooled and BNNeck embeddings (B, C) and logits (B, classes) from feature maps, and each
        feature head's embeddings and their logits (the same classifier)."""
        pooled = self.pool(maps).flatten(1)
        bnneck = self.bnneck(pooled)
        if not self.feature_heads:
            return Embeddings(pooled, bnneck, self.classifier(bnneck))
        extra = {name: head(maps, bnneck) for name, head in self.feature_heads.items()}
        return Embeddings(pooled, bnneck, self.classifier(bnneck), extra,
                          {name: self.classifier(f) for name, f in extra.items()})

    def forward(self, images: torch.Tensor, modality: Modalities = None) -> Embeddings:
        return self.forward_head(self.forward_features(images, modality))


def _insert_non_local(body: nn.Sequential, stages: list[list], mode: str) -> None:
    """Non-local blocks after the last blocks of the stages, :data:`NON_LOCAL_PER_STAGE` of each (as
    many as a stage has): the site's module becomes ``Sequential(module, NonLocal)``."""
    for stage, count in zip(stages, NON_LOCAL_PER_STAGE):
        for container, index, channels in stage[len(stage) - min(count, len(stage)):]:
            block = NonLocal(channels, non_local_channels(mode, channels))
            container[index] = nn.Sequential(container[index], block)
