"""Every loss term of one training step (Algorithm 1), returned by name.

``L_total = L_img + gamma * L_tri + L_id`` (Eq. 11), plus the terms other systems add
(:meth:`~msareid.systems.base.System.loss_terms`). F sees RGB, IR, the generated modalities
(MSA, :func:`msareid.systems.msa.image_losses`) and any further view of the real images in one
batch, after the optional ``erase`` augmentation that some recipes apply there instead of in the
loader.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import torch
from torch import nn

from msareid.config import LossConfig
from msareid.losses.feature import id_loss, multi_modality_triplet, weighted_regularized_triplet
from msareid.models.msa import MSANet
from msareid.systems import SYSTEMS
from msareid.systems.base import Batch, Hooks, Step
from msareid.systems.msa import image_losses

TOTAL = "total"  # the term that is minimised (Eq. 11)
T = TypeVar("T")


def triplet_loss(kind: str, features: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """The feature-level triplet over all modalities: ``"batch_hard"`` (L_mmtri, Eq. 10, with
    ``margin``) or ``"wrt"`` (the weighted regularised triplet, no margin)."""
    if kind == "wrt":
        return weighted_regularized_triplet(features, labels)
    if kind == "batch_hard":
        return multi_modality_triplet(features, labels, margin)
    raise ValueError(f"triplet must be batch_hard or wrt, got {kind!r}")


def msa_losses(model: MSANet, batch: Batch, loss: LossConfig | None = None, hooks: Hooks | None = None
               ) -> dict[str, torch.Tensor]:
    """All terms of a step, in order: ``total`` (what is minimised), ``id``, ``triplet``, ``img``
    (Eq. 9), the systems' terms, then the parts of ``img``.

    A part of a term is named ``<term>.<part>`` and every name without a dot is a term of the
    total: progress lines, logs and plots show whatever terms this returns (:func:`headline`).
    ``batch.rgb_second`` (channel augmentation) is a last block of RGB images for F, in the ID and
    triplet losses as the reference does; ISA adapts the first view only. ``hooks.gather`` gives the
    triplet loss (and the systems' batch-level terms) the whole global batch; the ID and image losses
    stay means over this rank's images.
    """
    loss, hooks = loss or LossConfig(), hooks or Hooks()
    rgb, ir, labels = batch.rgb, batch.ir, batch.labels
    if rgb.shape != ir.shape or rgb.shape[0] != labels.shape[0]:
        raise ValueError(f"rgb {tuple(rgb.shape)}, ir {tuple(ir.shape)} and {labels.shape[0]} labels do not pair up")
    generated, img, parts = image_losses(model, rgb, ir, loss)
    extra = [] if batch.rgb_second is None else [batch.rgb_second]
    images = torch.cat([rgb, ir, *generated.values(), *extra])
    if hooks.erase is not None:
        images = hooks.erase(images)
    blocks = 2 + len(generated) + len(extra)
    all_labels = labels.repeat(blocks)  # blocks: RGB, IR, each generated one, then the second RGB view
    out = model.embed(images, model.modalities(rgb.shape[0], [*generated, *(["rgb"] * len(extra))]))
    identity = id_loss(out.logits, all_labels)
    pooled, pooled_labels = out.pooled, all_labels
    if hooks.gather is not None:
        pooled, pooled_labels = hooks.gather(pooled, blocks), hooks.gather(all_labels, blocks)
    tri = triplet_loss(loss.triplet, pooled, pooled_labels, loss.margin)
    total = img + loss.gamma * tri + identity
    step = Step(model, out, all_labels, pooled, pooled_labels, loss, hooks.state)
    more: dict[str, torch.Tensor] = {}
    for s in SYSTEMS.values():
        for term in s.loss_terms(step):
            more[term.name] = term.value
            total = total + term.weight * term.value
    return {TOTAL: total, "id": identity, "triplet": tri, "img": img, **more, **parts}


def headline(terms: Mapping[str, T]) -> dict[str, T]:
    """The terms of the total among ``terms`` (names without a dot), in their order."""
    return {k: v for k, v in terms.items() if "." not in k}


class MSAObjective(nn.Module):
    """:func:`msa_losses` as a module, so DistributedDataParallel wraps the whole training forward;
    ``state`` (the systems' per-epoch numbers) is set by the trainer each epoch."""

    def __init__(self, net: MSANet, loss: LossConfig, hooks: Hooks | None = None) -> None:
        super().__init__()
        self.net = net
        self.loss = loss
        self.hooks = hooks or Hooks()

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        return msa_losses(self.net, batch, self.loss, self.hooks)
