"""Feature-level losses (section 3.4): the multi-modality triplet loss and the ID loss."""

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


def id_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_id: cross-entropy of the identity classifier."""
    return F.cross_entropy(logits, labels)
