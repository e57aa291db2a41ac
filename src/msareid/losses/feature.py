"""Feature-level losses (section 3.4): the multi-modality triplet loss and the ID loss, and the
weighted regularised triplet (the triplet loss of the paper's first Table 3 system)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def euclidean_distances(x: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances between the rows of ``x`` (N x N), safe to differentiate."""
    sq = (x * x).sum(dim=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.t())
    return d2.clamp_min(1e-12).sqrt()


def multi_modality_triplet(features: torch.Tensor, labels: torch.Tensor, margin: float = 0.5) -> torch.Tensor:
    """L_mmtri (Eq. 10): batch-hard triplet over all modalities at once, mean over anchors.

    For each anchor, the farthest sample of its identity and the closest sample of another
    identity, whatever their modality: ``[max D(a, p) - min D(a, n) + margin]_+``.
    """
    if features.shape[0] != labels.shape[0]:
        raise ValueError(f"{features.shape[0]} features but {labels.shape[0]} labels")
    dist = euclidean_distances(features)
    same = labels[:, None] == labels[None, :]
    hardest_pos = dist.masked_fill(~same, float("-inf")).amax(dim=1)
    hardest_neg = dist.masked_fill(same, float("inf")).amin(dim=1)
    return F.relu(hardest_pos - hardest_neg + margin).mean()


def _masked_softmax(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row-wise softmax of ``values`` over ``mask``, as the reference computes it: the maximum is
    taken over ``values * mask`` (masked entries count as 0) and the normaliser gets + 1e-6."""
    top = (values * mask).amax(dim=1, keepdim=True)
    e = torch.exp(values - top) * mask
    return e / (e.sum(dim=1, keepdim=True) + 1e-6)


def weighted_regularized_triplet(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The weighted regularised triplet (WRT, Ye et al., TPAMI 2021), mean over anchors.

    Euclidean distances; for each anchor, the positives weighted by a softmax of their distances
    (an anchor is its own positive, at distance ~0) and the negatives by a softmax of minus theirs;
    ``log(1 + exp(d_p - d_n))`` of the weighted distances: no margin, the weights (not detached)
    stand in for hard mining. Like Eq. 10 it ignores modality when used over all modalities.
    """
    if features.shape[0] != labels.shape[0]:
        raise ValueError(f"{features.shape[0]} features but {labels.shape[0]} labels")
    dist = euclidean_distances(features)
    same = labels[:, None] == labels[None, :]
    pos, neg = same.to(dist.dtype), (~same).to(dist.dtype)
    d_pos, d_neg = dist * pos, dist * neg
    furthest_positive = (d_pos * _masked_softmax(d_pos, pos)).sum(dim=1)
    closest_negative = (d_neg * _masked_softmax(-d_neg, neg)).sum(dim=1)
    return F.softplus(furthest_positive - closest_negative).mean()


def id_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_id: cross-entropy of the identity classifier."""
    return F.cross_entropy(logits, labels)
