"""A small exact t-SNE (van der Maaten and Hinton, 2008) in NumPy, for the report's Fig. 6.

Exact (O(N^2)) and meant for a few hundred points; deterministic for a seed.
"""

from __future__ import annotations

import numpy as np


def _conditional_probabilities(d2: np.ndarray, perplexity: float, tol: float = 1e-5) -> np.ndarray:
    """Row-wise Gaussian affinities whose entropy matches log(perplexity), by bisection on beta."""
    n = d2.shape[0]
    target = np.log(perplexity)
    p = np.zeros((n, n))
    for i in range(n):
        lo, hi, beta = 0.0, np.inf, 1.0
        row = np.delete(d2[i], i)
        for _ in range(64):
            w = np.exp(-(row - row.min()) * beta)
            s = w.sum()
            h = np.log(s) + beta * np.sum(w * (row - row.min())) / s
            if abs(h - target) < tol:
                break
            if h > target:
                lo, beta = beta, beta * 2 if hi == np.inf else (beta + hi) / 2
            else:
                hi, beta = beta, (beta + lo) / 2
        p[i, np.arange(n) != i] = w / s
    return p


def tsne(x: np.ndarray, dims: int = 2, perplexity: float = 20.0, iterations: int = 500, seed: int = 0) -> np.ndarray:
    """Embed the rows of ``x`` in ``dims`` dimensions."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    perplexity = min(perplexity, max(2.0, (n - 1) / 3))
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0)
    p = _conditional_probabilities(d2 / d2.mean(), perplexity)
    p = np.maximum((p + p.T) / (2 * n), 1e-12)
    y = np.random.default_rng(seed).normal(scale=1e-4, size=(n, dims))
    velocity, gains = np.zeros_like(y), np.ones_like(y)
    rate = max(n / 16.0, 50.0)  # the "auto" learning rate of openTSNE and scikit-learn, early exaggeration 4
    for it in range(iterations):
        exaggeration = 4.0 if it < 100 else 1.0
        sy = (y * y).sum(1)
        num = 1.0 / (1.0 + np.maximum(sy[:, None] + sy[None, :] - 2 * y @ y.T, 0))
        np.fill_diagonal(num, 0.0)
        q = np.maximum(num / num.sum(), 1e-12)
        pq = (exaggeration * p - q) * num
        grad = 4.0 * ((np.diag(pq.sum(1)) - pq) @ y)
        momentum = 0.5 if it < 250 else 0.8
        gains = np.where(np.sign(grad) != np.sign(velocity), gains + 0.2, gains * 0.8).clip(0.01)
        velocity = momentum * velocity - rate * gains * grad
        y = y + velocity
        y -= y.mean(0)
    return y
