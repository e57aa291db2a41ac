"""DDAG (Ye et al., "Dynamic Dual-Attentive Aggregation Learning for Visible-Infrared Person
Re-Identification", ECCV 2020), the second row of the MSA paper's Table 3, as its reference trains
it (mangye16/DDAG, ``train_ddag.py --graph --wpa --part 3``).

Its pieces (:mod:`msareid.models.ddag`): part aggregation (IWPA) in F, whose part-aggregated
feature is a further output of F, classified by F's classifier and used as the test feature (what
the reference reports and selects on); and graph attention (CGSA) beside F, training only. Its
terms: the ID loss of the part feature (weight 1) and the graph loss, weighted by the dynamic
weight ``1 / (1 + the previous epoch's mean of the other terms)``, 0 in the first epoch. The
training recipe (batch, augmentation, SGD, 81 epochs) is the one AGW's reference uses too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from msareid.systems.agw import SGD_RECIPE
from msareid.systems.base import Step, System, Term
from msareid.systems.baseline import NO_ISA

if TYPE_CHECKING:
    from torch import nn

    from msareid.config import Config
    from msareid.models.embedding import EmbeddingNet
    from msareid.models.msa import MSANet

PART = "part"  # F's further feature and its ID term
GRAPH = "graph"  # the graph loss's term, and the network's attribute holding the graph attention
WEIGHT = "graph_weight"  # the per-epoch weight of the graph loss (checkpoints and epoch logs)
TOTAL = "total"

NETWORK: dict[str, Any] = {
    "model.two_stream": True, "model.non_local": "off", "model.pooling": "avg", "model.parts": 3,
    "model.graph_attention": True, "loss.triplet": "batch_hard", "loss.margin": 0.3, **SGD_RECIPE,
}


class Ddag(System):
    """DDAG: two stems, part aggregation and graph attention; ID + batch-hard triplet (margin 0.3) +
    part ID + the dynamically weighted graph loss."""

    name = "ddag"
    title = "DDAG"
    summary = "Table 3's DDAG (ECCV 2020): two stems, part aggregation (IWPA), graph attention (CGSA), SGD"
    recipe = {**NETWORK, **NO_ISA, "loss.gamma": 1.0}
    network = NETWORK
    pieces = (("model.parts", "IWPA"), ("model.graph_attention", "CGSA"))
    feature_titles = {PART: "part-aggregated feature"}

    def matches(self, config: Config) -> bool:
        return config.model.parts > 0 or config.model.graph_attention

    def extend_embedding(self, config: Config, embed: EmbeddingNet) -> None:
        from msareid.models.ddag import PartAggregation

        if config.model.parts:
            embed.add_feature_head(PART, PartAggregation(embed.feature_dim, config.model.parts), test_feature=True)

    def extend_network(self, config: Config, net: MSANet) -> None:
        from msareid.models.ddag import GraphAttention

        if config.model.graph_attention:
            net.add_module(GRAPH, GraphAttention(net.embed.feature_dim, net.embed.num_classes))

    def loss_terms(self, step: Step) -> list[Term]:
        """The part ID loss (DDAG Eq. 10, weight 1) when F has parts; the graph loss (``-mean log
        p(label)`` of the graph attention over the pooled features of the global batch, nodes joined
        by identity, DDAG Eq. 9) at the epoch's weight when the network has graph attention."""
        import torch.nn.functional as F

        from msareid.losses.feature import id_loss
        from msareid.models.ddag import label_adjacency

        terms = []
        if PART in step.out.extra_logits:
            terms.append(Term(PART, id_loss(step.out.extra_logits[PART], step.labels)))
        graph = getattr(step.net, GRAPH, None)
        if graph is not None:
            log_probs = graph(step.pooled, label_adjacency(step.pooled_labels))
            terms.append(Term(GRAPH, F.nll_loss(log_probs, step.pooled_labels), step.state.get(WEIGHT, 0.0)))
        return terms

    def initial_state(self, net: MSANet) -> dict[str, float]:
        return {WEIGHT: 0.0} if getattr(net, GRAPH, None) is not None else {}

    def end_epoch(self, state: Mapping[str, float], epoch_means: Mapping[str, float]) -> dict[str, float]:
        return {WEIGHT: dynamic_graph_weight(epoch_means, state[WEIGHT])} if WEIGHT in state else {}

    def head_modules(self, net: MSANet) -> list[nn.Module]:
        return [m for m in (net.embed.feature_heads.get(PART), getattr(net, GRAPH, None)) if m is not None]

    def training_only(self, net: MSANet) -> list[nn.Module]:
        graph = getattr(net, GRAPH, None)
        return [graph] if graph is not None else []


def dynamic_graph_weight(epoch_means: Mapping[str, float], weight: float) -> float:
    """The weight of the graph loss for the next epoch: ``1 / (1 + L)``, L the mean over the epoch's
    steps of everything but the weighted graph term (``total - weight * graph``: the reference's
    ``loss_id + loss_tri + loss_p``)."""
    rest = epoch_means[TOTAL] - weight * epoch_means.get(GRAPH, 0.0)
    return 1.0 / (1.0 + rest)
