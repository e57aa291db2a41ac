"""Ranking metrics of cross-modality re-identification, vectorised over queries and chunked.

Rules (identical to the reference evaluation code, see DESIGN.md "Metrics"):

* the gallery is ranked by similarity, descending (cosine on L2-normalised features, or negative
  Euclidean distance); ties keep gallery order (stable sort);
* optional camera rule: for a query from camera ``a``, gallery images from camera ``b`` are removed
  from its ranking for every pair (a, b) given (SYSU-MM01: (3, 2), same location);
* queries with no true match left are skipped; every figure is divided by the valid queries;
* AP = mean over true matches of k / rank_k; INP = #matches / rank of the last match;
* CMC: ``"sysu"`` keeps only the first occurrence of each gallery identity before the cumulative
  match; ``"regdb"`` is the standard cumulative match, clipped at 1.

This module imports NumPy only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

CMC_MODES = ("sysu", "regdb")
METRICS = ("cosine", "euclidean")


@dataclass(frozen=True)
class RankingMetrics:
    """Figures of one query set against one gallery; all fractions in [0, 1]."""

    cmc: np.ndarray  # cmc[k] = share of valid queries matched within the first k + 1 ranks
    mAP: float
    mINP: float
    queries: int
    valid_queries: int

    def as_dict(self) -> dict[str, object]:
        """The JSON form: cmc, rank1/5/10/20, mAP, mINP and the query counts."""
        cmc = [float(v) for v in self.cmc]
        out: dict[str, object] = {"queries": self.queries, "valid_queries": self.valid_queries, "cmc": cmc}
        out.update({f"rank{k}": cmc[k - 1] for k in (1, 5, 10, 20) if k <= len(cmc)})
        out.update({"mAP": float(self.mAP), "mINP": float(self.mINP)})
        return out


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def similarity(query: np.ndarray, gallery: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Query x gallery similarity: cosine on normalised rows, or minus the squared Euclidean distance.

    The squared distance ranks exactly like the distance; callers pass already-normalised rows
    when ``metric`` is cosine (see :func:`evaluate_features`).
    """
    sim = query @ gallery.T
    if metric == "cosine":
        return sim
    if metric == "euclidean":
        q2 = np.einsum("ij,ij->i", query, query)[:, None]
        g2 = np.einsum("ij,ij->i", gallery, gallery)[None, :]
        return -(q2 + g2 - 2.0 * sim)
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


class _Accumulator:
    def __init__(self, max_rank: int) -> None:
        self.max_rank = max_rank
        self.cmc = np.zeros(max_rank, dtype=np.float64)
        self.ap = self.inp = 0.0
        self.valid = self.queries = 0

    def add(self, first_rank: np.ndarray, ap: np.ndarray, inp: np.ndarray, valid: np.ndarray) -> None:
        ranks = first_rank[valid]
        self.cmc += (ranks[:, None] <= np.arange(1, self.max_rank + 1)[None, :]).sum(axis=0)
        self.ap += float(ap[valid].sum())
        self.inp += float(inp[valid].sum())
        self.valid += int(valid.sum())
        self.queries += int(valid.size)

    def result(self) -> RankingMetrics:
        n = max(self.valid, 1)
        return RankingMetrics(self.cmc / n, self.ap / n, self.inp / n, self.queries, self.valid)


def _rank_chunk(sim: np.ndarray, q_pids: np.ndarray, q_cams: np.ndarray, g_pids: np.ndarray,
                g_cams: np.ndarray, g_uid: np.ndarray, cmc_mode: str,
                camera_rules: Sequence[tuple[int, int]]) -> tuple[np.ndarray, ...]:
    n_q, n_g = sim.shape
    order = np.argsort(-sim, axis=1, kind="stable")
    keep = np.ones((n_q, n_g), dtype=bool)
    ranked_cams = g_cams[order]
    for q_cam, g_cam in camera_rules:
        keep &= ~((q_cams[:, None] == q_cam) & (ranked_cams == g_cam))
    match = (g_pids[order] == q_pids[:, None]) & keep
    n_match = match.sum(axis=1)
    valid = n_match > 0
    rank = np.cumsum(keep, axis=1)  # 1-based rank in the filtered list (meaningful where kept)
    hits = np.cumsum(match, axis=1)
    ap = np.where(match, hits / np.maximum(rank, 1), 0.0).sum(axis=1) / np.maximum(n_match, 1)
    last = np.where(match, rank, 0).max(axis=1)
    inp = n_match / np.maximum(last, 1)
    first_pos = np.argmax(match, axis=1)  # raw position of the first true match
    if cmc_mode == "regdb":
        first_rank = rank[np.arange(n_q), first_pos]
    else:
        first_rank = _dedup_rank(order, keep, first_pos, q_pids, g_pids, g_uid)
    return first_rank, ap, inp, valid


def _dedup_rank(order: np.ndarray, keep: np.ndarray, first_pos: np.ndarray, q_pids: np.ndarray,
                g_pids: np.ndarray, g_uid: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Rank of the true identity once each gallery identity is kept at its first occurrence only."""
    n_q, n_g = order.shape
    uniq, group_order, starts = g_uid
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.broadcast_to(np.arange(n_g), (n_q, n_g)), axis=1)
    kept_at = np.take_along_axis(keep, position, axis=1)  # keep flag per gallery index
    pos = np.where(kept_at, position, n_g)[:, group_order]  # grouped by identity
    first_of_id = np.minimum.reduceat(pos, starts, axis=1)  # n_q x identities
    return (first_of_id < first_pos[:, None]).sum(axis=1) + 1


def _identity_groups(g_pids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    uniq, inverse = np.unique(g_pids, return_inverse=True)
    group_order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[group_order], np.arange(uniq.size))
    return uniq, group_order, starts


def evaluate_similarity(
    sim_chunks: Iterator[tuple[slice, np.ndarray]],
    q_pids: np.ndarray, q_cams: np.ndarray, g_pids: np.ndarray, g_cams: np.ndarray,
    cmc_mode: str = "sysu", camera_rules: Sequence[tuple[int, int]] = (), max_rank: int = 20,
) -> RankingMetrics:
    """Metrics from (query slice, similarity block) chunks covering every query once."""
    if cmc_mode not in CMC_MODES:
        raise ValueError(f"cmc_mode must be one of {CMC_MODES}, got {cmc_mode!r}")
    q_pids, q_cams = np.asarray(q_pids), np.asarray(q_cams)
    g_pids, g_cams = np.asarray(g_pids), np.asarray(g_cams)
    groups = _identity_groups(g_pids)
    acc = _Accumulator(max_rank)
    for rows, sim in sim_chunks:
        acc.add(*_rank_chunk(sim, q_pids[rows], q_cams[rows], g_pids, g_cams, groups, cmc_mode, camera_rules))
    return acc.result()


def evaluate_features(
    query: np.ndarray, gallery: np.ndarray,
    q_pids: np.ndarray, q_cams: np.ndarray, g_pids: np.ndarray, g_cams: np.ndarray,
    metric: str = "cosine", cmc_mode: str = "sysu", camera_rules: Sequence[tuple[int, int]] = (),
    max_rank: int = 20, chunk_elements: int = 2**22,
) -> RankingMetrics:
    """Rank ``gallery`` for every ``query`` row and compute CMC, mAP and mINP.

    Memory stays bounded: queries are processed in chunks of about ``chunk_elements`` similarities.
    """
    query, gallery = np.asarray(query, np.float32), np.asarray(gallery, np.float32)
    if metric == "cosine":
        query, gallery = l2_normalize(query), l2_normalize(gallery)
    rows = max(1, chunk_elements // max(1, gallery.shape[0]))
    chunks = ((s, similarity(query[s], gallery, metric)) for s in _chunks(query.shape[0], rows))
    return evaluate_similarity(chunks, q_pids, q_cams, g_pids, g_cams, cmc_mode, camera_rules, max_rank)


def evaluate_distance(
    distmat: np.ndarray, q_pids: np.ndarray, q_cams: np.ndarray, g_pids: np.ndarray, g_cams: np.ndarray,
    cmc_mode: str = "sysu", camera_rules: Sequence[tuple[int, int]] = (), max_rank: int = 20,
) -> RankingMetrics:
    """Metrics from a precomputed query x gallery distance matrix (smaller is closer)."""
    distmat = np.asarray(distmat)
    chunks = ((s, -distmat[s]) for s in _chunks(distmat.shape[0], max(1, 2**22 // max(1, distmat.shape[1]))))
    return evaluate_similarity(chunks, q_pids, q_cams, g_pids, g_cams, cmc_mode, camera_rules, max_rank)
