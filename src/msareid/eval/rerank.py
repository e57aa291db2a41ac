"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017), in NumPy.

The usual parameters: k1 = 20, k2 = 6, lambda = 0.3. The final distance is
``(1 - lambda) * Jaccard + lambda * original``. Weights are kept in float32 (the
authors' code uses float16, so its figures can differ in the last digits). It works on the full
(Q + G) x (Q + G) distance matrix, so memory grows with the square of the number of images:
fine for SYSU-MM01 and RegDB, not for galleries of millions (use plain ranking there).
"""

from __future__ import annotations

import numpy as np


def k_reciprocal_rerank(query: np.ndarray, gallery: np.ndarray, k1: int = 20, k2: int = 6,
                        lambda_value: float = 0.3) -> np.ndarray:
    """Re-ranked query x gallery distances from L2-normalised features (smaller is closer).

    The original distance is the squared Euclidean distance over query and gallery together.
    """
    feats = np.concatenate([query, gallery]).astype(np.float32)
    sq = (feats * feats).sum(1)
    original = np.maximum(sq[:, None] + sq[None, :] - 2.0 * feats @ feats.T, 0.0)
    return rerank_distance(original, query.shape[0], k1, k2, lambda_value)


def rerank_distance(original: np.ndarray, n_query: int, k1: int = 20, k2: int = 6,
                    lambda_value: float = 0.3) -> np.ndarray:
    """Re-ranked query x gallery distances from the full (Q + G) x (Q + G) distance matrix,
    queries first."""
    n_q, n = n_query, original.shape[0]
    original = original / np.maximum(original.max(axis=1, keepdims=True), 1e-12)  # each row by its maximum
    ranks = np.argsort(original, axis=1, kind="stable")
    half = int(np.around(k1 / 2))
    weights = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        reciprocal = _k_reciprocal(ranks, i, k1)
        expansion = reciprocal
        for candidate in reciprocal:  # add a neighbour's own set when it mostly agrees with i's
            neighbours = _k_reciprocal(ranks, candidate, half)
            if len(np.intersect1d(neighbours, reciprocal)) > 2 / 3 * len(neighbours):
                expansion = np.union1d(expansion, neighbours)
        w = np.exp(-original[i, expansion])
        weights[i, expansion] = w / w.sum()
    if k2 > 1:  # local query expansion
        weights = np.stack([weights[ranks[i, :k2]].mean(axis=0) for i in range(n)])
    jaccard = np.zeros((n_q, n - n_q), dtype=np.float32)
    for i in range(n_q):
        overlap = np.minimum(weights[i][None, :], weights[n_q:]).sum(axis=1)
        jaccard[i] = 1.0 - overlap / (2.0 - overlap)
    return (1 - lambda_value) * jaccard + lambda_value * original[:n_q, n_q:]


def _k_reciprocal(ranks: np.ndarray, i: int, k: int) -> np.ndarray:
    """Indices j in i's top k + 1 whose own top k + 1 contains i."""
    forward = ranks[i, : k + 1]
    backward = ranks[forward, : k + 1]
    return forward[np.any(backward == i, axis=1)]
