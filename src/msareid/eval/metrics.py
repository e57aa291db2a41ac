"""Ranking metrics of cross-modality re-identification, vectorised over queries and chunked.

Rules (identical to the reference evaluation code, see docs/datasets.md, "Evaluation rules"):

* the gallery is ranked by similarity, descending (cosine on L2-normalised features, or negative
  Euclidean distance); ties keep gallery order (stable sort);
* the benchmark's exclusions (:class:`~msareid.rules.RankingRules`): for every pair (a, b) of
  ``excluded_cameras`` a query from camera ``a`` loses the gallery images of camera ``b``
  (SYSU-MM01: (3, 2), same location); with ``same_camera_same_id`` a query loses the images of its
  own identity and camera (LLCM);
* queries with no true match left are skipped; every figure is divided by the valid queries;
* AP = mean over true matches of k / rank_k; INP = #matches / rank of the last match;
* CMC: ``identity`` keeps only the first occurrence of each gallery identity before the cumulative
  match (SYSU-MM01, LLCM); ``image`` is the standard cumulative match, clipped at 1 (RegDB).

This module imports NumPy only (and the plain dataclass of the rules).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from msareid.rules import METRICS, STANDARD, RankingRules


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
    norm = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]  # one pass; linalg.norm makes a squared copy
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


_REMOVED = np.uint32(0xFFFFFFFF)  # above every key of a finite similarity (and of +inf: 0xFF800000)


def _order_key(dist: np.ndarray) -> np.ndarray:
    """uint32 keys that sort as ``dist`` sorts, ascending (equal values, equal keys).

    float32: the IEEE bits, sign-folded so that unsigned order is numeric order (``dist`` is
    modified in place: -0.0 becomes +0.0). Other dtypes: the dense rank of each value in its row.
    """
    if dist.dtype == np.float32:
        d = np.add(dist, np.float32(0.0), out=dist)  # -0.0 becomes +0.0: both are the same value
        u = d.view(np.uint32)
        u ^= (u.view(np.int32) >> 31).view(np.uint32) | np.uint32(0x80000000)
        return u
    rows = np.arange(dist.shape[0])[:, None]
    order = np.argsort(dist, axis=1, kind="stable")
    ranked = dist[rows, order]
    step = np.concatenate([np.zeros((dist.shape[0], 1), bool), ranked[:, 1:] != ranked[:, :-1]], axis=1)
    dense = np.empty(dist.shape, dtype=np.uint32)
    dense[rows, order] = np.cumsum(step, axis=1)
    return dense


class _Gallery:
    """The gallery grouped by identity, so each identity's images are one contiguous column block."""

    def __init__(self, pids: np.ndarray, cams: np.ndarray) -> None:
        self.order = np.argsort(pids, kind="stable")  # column j of a grouped block is gallery order[j]
        self.in_order = bool(np.all(self.order == np.arange(len(pids))))  # e.g. SYSU galleries, id by id
        self.pids, self.cams = pids[self.order], cams[self.order]
        self.ids, self.starts = np.unique(self.pids, return_index=True)
        self.ends = np.append(self.starts[1:], len(pids))
        self.size = len(pids)
        self.index_bits = max(1, int(self.size - 1).bit_length())
        if self.index_bits > 31:
            raise ValueError(f"galleries of more than 2**31 images are not supported, got {self.size}")


def _tie_breaks(keys: np.ndarray, rows: np.ndarray, cols: np.ndarray, gal: _Gallery,
                batch: int = 256) -> np.ndarray:
    """For each (row, column) given: the kept images of that row with the same key and a smaller
    gallery index, which rank before it (ties keep gallery order)."""
    out = np.empty(len(rows), dtype=np.int64)
    for s in _chunks(len(rows), batch):
        r, c = rows[s], cols[s]
        same = keys[r] == keys[r, c][:, None]
        out[s] = (same & (gal.order[None, :] < gal.order[c][:, None])).sum(axis=1)
    return out


def _rank_chunk(dist: np.ndarray, q_pids: np.ndarray, q_cams: np.ndarray, gal: _Gallery,
                rules: RankingRules) -> tuple[np.ndarray, ...]:
    """First-match rank (CMC), AP and INP of each query row of ``dist`` (smaller is closer; columns
    grouped by identity; the block is overwritten).

    Each value becomes a 32-bit key that sorts as it does; removed images (the rules' exclusions)
    get the largest key, behind every kept image of their row. One sort of each row (a vectorised
    sort of 32-bit keys) and a binary search give the rank of every true match: the kept images
    with a smaller key, plus those with an equal key and a smaller gallery index (ties keep gallery
    order; rare with real similarities, counted exactly). Images of the query's own identity and
    camera (``same_camera_same_id``) all lie in its identity's block, among the true matches.
    """
    n_q, n_g = dist.shape
    keys = _order_key(dist)
    for q_cam, g_cam in rules.excluded_cameras:
        keys[np.ix_(q_cams == q_cam, gal.cams == g_cam)] = _REMOVED

    u, rows, cols = _true_matches(keys, q_pids, q_cams, gal, rules)
    true_keys = keys[rows, cols]

    # rank among the kept images: a binary search of each true key in its sorted row
    flat = np.sort(keys, axis=1).astype(np.uint64)
    flat |= (np.arange(n_q, dtype=np.uint64) << np.uint64(32))[:, None]  # row | key: sorted as one array
    needles = (rows.astype(np.uint64) << np.uint64(32)) | true_keys
    below = np.searchsorted(flat.reshape(-1), needles, side="left") - rows * n_g
    equal = np.searchsorted(flat.reshape(-1), needles, side="right") - rows * n_g - below
    rank = below + 1
    tied = np.flatnonzero(equal > 1)
    if len(tied):
        rank[tied] += _tie_breaks(keys, rows[tied], cols[tied], gal)

    order = np.lexsort((rank, rows))  # the true matches of each row, best first
    rows, rank = rows[order], rank[order]
    n_match = np.bincount(rows, minlength=n_q)
    valid = n_match > 0
    seg_start = np.cumsum(n_match) - n_match
    j = np.arange(len(rows)) - seg_start[rows] + 1  # j-th true match of its row
    ap = np.bincount(rows, weights=j / rank, minlength=n_q) / np.maximum(n_match, 1)
    last = np.zeros(n_q, dtype=np.int64)
    first = np.zeros(n_q, dtype=np.int64)
    if len(rows):
        last[valid] = rank[seg_start[valid] + n_match[valid] - 1]
        first[valid] = rank[seg_start[valid]]
    inp = n_match / np.maximum(last, 1)
    if rules.cmc == "identity":  # rank among identities, each at its best-ranked kept image
        first = _identity_rank(keys, u, gal)
    return first, ap, inp, valid


def _true_matches(keys: np.ndarray, q_pids: np.ndarray, q_cams: np.ndarray, gal: _Gallery,
                  rules: RankingRules) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The true matches of every row, as (row, column) pairs: the block of the query's identity
    without removed images (the images of the query's own camera under ``same_camera_same_id``
    are also given the removed key in ``keys``); and ``u``, each query's index among the gallery
    identities."""
    u = np.searchsorted(gal.ids, q_pids).clip(0, len(gal.ids) - 1)
    present = gal.ids[u] == q_pids
    lo, hi = np.where(present, gal.starts[u], 0), np.where(present, gal.ends[u], 0)
    counts = hi - lo
    rows = np.repeat(np.arange(len(q_pids)), counts)
    cols = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(lo, counts)
    kept = np.ones(len(rows), dtype=bool)
    for q_cam, g_cam in rules.excluded_cameras:
        kept &= ~((q_cams[rows] == q_cam) & (gal.cams[cols] == g_cam))
    if rules.same_camera_same_id:
        own = gal.cams[cols] == q_cams[rows]
        keys[rows[own], cols[own]] = _REMOVED
        kept &= ~own
    return u, rows[kept], cols[kept]


def _identity_rank(keys: np.ndarray, u: np.ndarray, gal: _Gallery) -> np.ndarray:
    """1-based position of each row's identity (block ``u``) when identities are ordered by their
    best kept image (key, then gallery index). Rows where another identity's best key equals the
    true one's are ranked again with the gallery index in the key, exactly."""
    n_q = keys.shape[0]
    best = np.minimum.reduceat(keys, gal.starts, axis=1)
    true_best = best[np.arange(n_q), u]
    first = (best < true_best[:, None]).sum(axis=1) + 1
    tied = np.flatnonzero((best == true_best[:, None]).sum(axis=1) > 1)
    if len(tied):
        wide = (keys[tied].astype(np.uint64) << np.uint64(gal.index_bits)) | gal.order.astype(np.uint64)[None, :]
        wide_best = np.minimum.reduceat(wide, gal.starts, axis=1)
        first[tied] = (wide_best < wide_best[np.arange(len(tied)), u[tied]][:, None]).sum(axis=1) + 1
    return first


def evaluate_similarity(
    sim_chunks: Iterator[tuple[slice, np.ndarray]],
    q_pids: np.ndarray, q_cams: np.ndarray, g_pids: np.ndarray, g_cams: np.ndarray,
    rules: RankingRules = STANDARD, grouped: bool = False,
) -> RankingMetrics:
    """Metrics from (query slice, similarity block) chunks covering every query once.

    ``grouped`` says the blocks' columns are already in identity-grouped order (see
    :func:`evaluate_features`); otherwise each block is reordered here.
    """
    dist_chunks = ((rows, np.negative(sim)) for rows, sim in sim_chunks)
    return _evaluate(dist_chunks, q_pids, q_cams, g_pids, g_cams, rules, grouped, True)


def _evaluate(
    dist_chunks: Iterator[tuple[slice, np.ndarray]],
    q_pids: np.ndarray, q_cams: np.ndarray, g_pids: np.ndarray, g_cams: np.ndarray,
    rules: RankingRules, grouped: bool, owned: bool,
) -> RankingMetrics:
    """The work of the public functions, on distance-like blocks (smaller is closer).

    ``owned`` says the blocks are scratch copies that ranking may overwrite.
    """
    if not isinstance(rules, RankingRules):
        raise TypeError(f"rules must be a RankingRules, got {type(rules).__name__}")
    q_pids, q_cams = np.asarray(q_pids), np.asarray(q_cams)
    gal = _Gallery(np.asarray(g_pids), np.asarray(g_cams))
    acc = _Accumulator(rules.max_rank)
    for rows, dist in dist_chunks:
        if grouped or gal.in_order:
            block = dist if owned else dist.copy()
        else:
            block = dist[:, gal.order]  # a new array: ours to overwrite
        acc.add(*_rank_chunk(block, q_pids[rows], q_cams[rows], gal, rules))
    return acc.result()


def evaluate_features(
    query: np.ndarray, gallery: np.ndarray,
    q_pids: np.ndarray, q_cams: np.ndarray, g_pids: np.ndarray, g_cams: np.ndarray,
    rules: RankingRules = STANDARD, chunk_elements: int = 2**18,
) -> RankingMetrics:
    """Rank ``gallery`` for every ``query`` row by ``rules.metric`` and compute CMC, mAP and mINP.

    Memory stays bounded: queries are processed in chunks of about ``chunk_elements`` similarities.
    """
    metric = rules.metric
    query, gallery = np.asarray(query, np.float32), np.asarray(gallery, np.float32)
    if metric == "cosine":
        query, gallery = l2_normalize(query), l2_normalize(gallery)
    order = np.argsort(np.asarray(g_pids), kind="stable")  # the column order evaluate_similarity uses
    gallery = gallery[order]
    rows = max(16, chunk_elements // max(1, gallery.shape[0]))  # few rows: Python overhead per chunk
    chunks = ((s, np.negative(similarity(query[s], gallery, metric))) for s in _chunks(query.shape[0], rows))
    return _evaluate(chunks, q_pids, q_cams, g_pids, g_cams, rules, True, True)


def evaluate_distance(
    distmat: np.ndarray, q_pids: np.ndarray, q_cams: np.ndarray, g_pids: np.ndarray, g_cams: np.ndarray,
    rules: RankingRules = STANDARD, chunk_elements: int = 2**18,
) -> RankingMetrics:
    """Metrics from a precomputed query x gallery distance matrix (smaller is closer; the
    ``metric`` of ``rules`` is not used)."""
    distmat = np.asarray(distmat)
    rows = max(16, chunk_elements // max(1, distmat.shape[1]))
    chunks = ((s, distmat[s]) for s in _chunks(distmat.shape[0], rows))
    return _evaluate(chunks, q_pids, q_cams, g_pids, g_cams, rules, False, False)
