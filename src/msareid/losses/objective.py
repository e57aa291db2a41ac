"""Every loss term of one training step (Algorithm 1), returned by name.

``L_img = alpha * sum target_loss(X_t, X_a) - beta * sum source_loss(X_s, X_a)`` over the present
adapters (Eq. 9, Algorithm 1 line 10: target = SSL, source = SSL+ in MSA),
``L_total = L_img + gamma * L_mmtri + L_id`` (Eq. 11).

DDAG's network (Table 3) adds two terms when the model has its modules: ``part``, the ID loss of
the part-aggregated feature, and ``graph``, the NLL of the graph attention's class scores over the
whole batch, weighted by DDAG's dynamic weight (:func:`dynamic_graph_weight`, set each epoch).

The image losses compare images in the model's ISA space (``MSANet.isa_space``); F sees the
generated images in its own input space, after the optional ``erase`` augmentation that some
recipes apply to all four modalities after ISA instead of to the inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from msareid.losses.feature import id_loss, multi_modality_triplet, weighted_regularized_triplet
from msareid.losses.image import pair_loss
from msareid.models.ddag import label_adjacency
from msareid.models.msa import MSANet

TOTAL = "total"  # the term that is minimised (Eq. 11)
T = TypeVar("T")


def msa_losses(
    model: MSANet,
    rgb: torch.Tensor,
    ir: torch.Tensor,
    labels: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 1.0,
    gamma: float = 1.0,
    margin: float = 0.5,
    triplet: str = "batch_hard",
    source_loss: str = "ssl_plus",
    target_loss: str = "ssl",
    window_size: int = 11,
    sigma: float = 1.5,
    erase: Callable[[torch.Tensor], torch.Tensor] | None = None,
    gather: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
    rgb_second: torch.Tensor | None = None,
    graph_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """All terms of a step, in order: ``total`` (Eq. 11, what is minimised), ``id``, ``triplet``,
    ``img`` (Eq. 9), then the parts of ``img``.

    A part of a term is named ``<term>.<part>`` and every name without a dot is a term of Eq. 11:
    progress lines, logs and plots show whatever terms this returns (:func:`headline`). The parts of
    ``img`` are ``img.target_r2i`` (X_t = IR), ``img.source_r2i`` (X_s = RGB), ``img.target_i2r``
    (X_t = RGB) and ``img.source_i2r`` (X_s = IR); absent adapters and ``"none"`` losses leave theirs
    out. RGB sample k and IR sample k share the identity ``labels[k]``. F sees RGB, IR
    and the generated modalities in one batch; ``erase`` (if given) augments that batch first.
    ``triplet`` is the feature-level triplet over all modalities: ``"batch_hard"`` (L_mmtri, Eq. 10,
    with ``margin``) or ``"wrt"`` (AGW's weighted regularised triplet, no margin).

    ``rgb_second`` (channel augmentation) is a second view of each RGB image (channel exchange):
    F sees it as a last block of RGB images, in the ID and triplet losses as the reference does;
    ISA adapts the first view only and L_img compares as without it (the second view is already a
    hand-made IR-like image, and sample k of each view pairs with IR sample k once).

    ``gather(tensor, blocks)`` (under several ranks: :func:`msareid.training.global_batch.gather_blocks`)
    gives the triplet loss the features and labels of the whole global batch, so it mines over
    every rank's images; the ID and image losses stay means over this rank's images.

    DDAG's terms, present when the model has the modules: ``part`` (F with parts: the ID loss of the
    part-aggregated logits, DDAG Eq. 10, added with weight 1) and ``graph`` (a model with graph
    attention: ``-mean log p(label)`` of :class:`~msareid.models.ddag.GraphAttention` over the
    pooled features of the global batch, nodes joined by identity, DDAG Eq. 9; added with
    ``graph_weight``, logged unweighted, as the reference logs it). The total is then DDAG's Eq. 11,
    ``L_id + L_tri + L_part + graph_weight * L_graph`` (plus ``img`` on a model with ISA).
    """
    if rgb.shape != ir.shape or rgb.shape[0] != labels.shape[0]:
        raise ValueError(f"rgb {tuple(rgb.shape)}, ir {tuple(ir.shape)} and {labels.shape[0]} labels do not pair up")
    rgb_s, ir_s = model.to_isa_space(rgb), model.to_isa_space(ir)
    generated = model.adapt(rgb_s, ir_s)
    pairs = {"r2i": (rgb_s, ir_s), "i2r": (ir_s, rgb_s)}  # name -> (source, target)
    parts: dict[str, torch.Tensor] = {}
    img = rgb.new_zeros(())
    for name, adapted in generated.items():
        source, target = pairs[name]
        t = pair_loss(target_loss, target, adapted, window_size, sigma)
        s = pair_loss(source_loss, source, adapted, window_size, sigma)
        if t is not None:
            parts[f"img.target_{name}"] = t
            img = img + alpha * t
        if s is not None:
            parts[f"img.source_{name}"] = s
            img = img - beta * s
    extra = [] if rgb_second is None else [rgb_second]
    images = torch.cat([rgb, ir, *(model.from_isa_space(g) for g in generated.values()), *extra])
    if erase is not None:
        images = erase(images)
    blocks = 2 + len(generated) + len(extra)
    all_labels = labels.repeat(blocks)  # blocks: RGB, IR, each generated one, then the second RGB view
    out = model.embed(images, model.modalities(rgb.shape[0], [*generated, *(["rgb"] * len(extra))]))
    identity = id_loss(out.logits, all_labels)
    pooled, pooled_labels = out.pooled, all_labels
    if gather is not None:
        pooled, pooled_labels = gather(pooled, blocks), gather(all_labels, blocks)
    if triplet == "wrt":
        tri = weighted_regularized_triplet(pooled, pooled_labels)
    elif triplet == "batch_hard":
        tri = multi_modality_triplet(pooled, pooled_labels, margin)
    else:
        raise ValueError(f"triplet must be batch_hard or wrt, got {triplet!r}")
    total = img + gamma * tri + identity
    ddag: dict[str, torch.Tensor] = {}
    if out.part_logits is not None:
        ddag["part"] = id_loss(out.part_logits, all_labels)
        total = total + ddag["part"]
    if model.graph is not None:
        log_probs = model.graph(pooled, label_adjacency(pooled_labels))
        ddag["graph"] = F.nll_loss(log_probs, pooled_labels)
        total = total + graph_weight * ddag["graph"]
    return {TOTAL: total, "id": identity, "triplet": tri, "img": img, **ddag, **parts}


def dynamic_graph_weight(epoch_means: Mapping[str, float], weight: float) -> float:
    """DDAG's weight of the graph loss for the next epoch: ``1 / (1 + L)``, L the mean over the
    epoch's steps of everything but the weighted graph term (``total - weight * graph``: for DDAG
    the reference's ``loss_id + loss_tri + loss_p``). The first epoch's weight is 0."""
    rest = epoch_means[TOTAL] - weight * epoch_means.get("graph", 0.0)
    return 1.0 / (1.0 + rest)


def headline(terms: Mapping[str, T]) -> dict[str, T]:
    """The terms of Eq. 11 among ``terms`` (names without a dot), in their order."""
    return {k: v for k, v in terms.items() if "." not in k}


class MSAObjective(nn.Module):
    """``msa_losses`` as a module, so DistributedDataParallel wraps the whole training forward."""

    def __init__(self, net: MSANet, erase: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 gather: Callable[[torch.Tensor, int], torch.Tensor] | None = None, **loss_kwargs: object) -> None:
        super().__init__()
        self.net = net
        self.erase = erase
        self.gather = gather
        self.loss_kwargs = loss_kwargs
        self.graph_weight = 0.0  # DDAG's dynamic weight of the graph loss, set by the trainer each epoch

    def forward(self, rgb: torch.Tensor, ir: torch.Tensor, labels: torch.Tensor,
                rgb_second: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return msa_losses(self.net, rgb, ir, labels, erase=self.erase, gather=self.gather, rgb_second=rgb_second,
                          graph_weight=self.graph_weight, **self.loss_kwargs)  # type: ignore[arg-type]
