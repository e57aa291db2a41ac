"""Ranking metrics against hand-computed values and a deliberately naive per-query loop."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from msareid.eval.metrics import evaluate_distance, evaluate_features
from msareid.rules import RankingRules

SYSU = RankingRules("sysu", cmc="identity", excluded_cameras=((3, 2),))


def _sysu(max_rank: int) -> RankingRules:
    return RankingRules("sysu", cmc="identity", excluded_cameras=((3, 2),), max_rank=max_rank)


def naive(dist, q_pids, q_cams, g_pids, g_cams, cmc_mode="sysu", rules=(), max_rank=20, own_camera=False):
    """docs/datasets.md, "Evaluation rules" (and the LLCM rule with ``own_camera``), literally, one query at a time."""
    cmcs, aps, inps = [], [], []
    for i in range(len(q_pids)):
        order = sorted(range(len(g_pids)), key=lambda j: (dist[i][j], j))  # stable: ties by index
        order = [j for j in order if not any(q_cams[i] == a and g_cams[j] == b for a, b in rules)]
        if own_camera:
            order = [j for j in order if not (g_pids[j] == q_pids[i] and g_cams[j] == q_cams[i])]
        matches = [int(g_pids[j] == q_pids[i]) for j in order]
        if sum(matches) == 0:
            continue
        hit_ranks = [k + 1 for k, m in enumerate(matches) if m]
        aps.append(np.mean([(n + 1) / r for n, r in enumerate(hit_ranks)]))
        inps.append(len(hit_ranks) / hit_ranks[-1])
        if cmc_mode == "sysu":
            seen, ids = set(), []
            for j in order:
                if g_pids[j] not in seen:
                    seen.add(g_pids[j])
                    ids.append(g_pids[j])
            first = ids.index(q_pids[i]) + 1
        else:
            first = hit_ranks[0]
        cmcs.append([1.0 if first <= k else 0.0 for k in range(1, max_rank + 1)])
    if not cmcs:
        return None, None, None, 0
    return np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(inps)), len(cmcs)


def test_hand_computed_single_query() -> None:
    # ranking by distance: g0 (id 2), g1 (id 1), g2 (id 2), g3 (id 1), g4 (id 3)
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
    q_pids, q_cams = np.array([1]), np.array([1])
    g_pids, g_cams = np.array([2, 1, 2, 1, 3]), np.array([1, 1, 1, 1, 1])
    r = evaluate_distance(dist, q_pids, q_cams, g_pids, g_cams, rules=RankingRules(cmc="image", max_rank=5))
    assert r.cmc.tolist() == [0, 1, 1, 1, 1]
    assert r.mAP == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert r.mINP == pytest.approx(2 / 4)
    # identity de-duplication: the ids in order are 2, 1, 3 -> the true id is second as well
    s = evaluate_distance(dist, q_pids, q_cams, g_pids, g_cams, rules=RankingRules(cmc="identity", max_rank=5))
    assert s.cmc.tolist() == [0, 1, 1, 1, 1] and s.mAP == r.mAP


def test_deduplication_moves_the_true_match_up() -> None:
    # ranking: id 5, id 5, id 5, id 1  -> standard rank 4, de-duplicated rank 2
    dist = np.array([[0.1, 0.2, 0.3, 0.4]])
    args = (np.array([1]), np.array([1]), np.array([5, 5, 5, 1]), np.array([1, 1, 1, 1]))
    assert evaluate_distance(dist, *args, rules=RankingRules(cmc="image", max_rank=4)).cmc.tolist() == [0, 0, 0, 1]
    assert evaluate_distance(dist, *args, rules=RankingRules(cmc="identity", max_rank=4)).cmc.tolist() == [0, 1, 1, 1]


def test_ties_are_broken_by_gallery_index() -> None:
    dist = np.array([[0.5, 0.5, 0.5]])
    args = (np.array([7]), np.array([1]), np.array([3, 7, 7]), np.array([1, 1, 1]))
    r = evaluate_distance(dist, *args, rules=RankingRules(cmc="image", max_rank=3))
    assert r.cmc.tolist() == [0, 1, 1] and r.mAP == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_cam3_query_loses_cam2_gallery_images() -> None:
    # the closest image is the true match but from cam2: removed for a cam3 query, kept for cam6
    dist = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])
    q_pids, q_cams = np.array([1, 1]), np.array([3, 6])
    g_pids, g_cams = np.array([1, 2, 1]), np.array([2, 1, 4])
    r = evaluate_distance(dist, q_pids, q_cams, g_pids, g_cams, rules=_sysu(3))
    # cam3: ranking id2, id1 -> AP 1/2, rank 2; cam6: id1, id2, id1 -> AP (1 + 2/3)/2, rank 1
    assert r.cmc.tolist() == [0.5, 1.0, 1.0]
    assert r.mAP == pytest.approx((1 / 2 + (1 + 2 / 3) / 2) / 2)
    assert r.mINP == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_queries_without_a_match_are_skipped() -> None:
    dist = np.array([[0.1, 0.2], [0.3, 0.1], [0.2, 0.1]])
    q_pids, q_cams = np.array([1, 9, 2]), np.array([3, 3, 3])
    g_pids, g_cams = np.array([1, 2]), np.array([1, 2])
    r = evaluate_distance(dist, q_pids, q_cams, g_pids, g_cams, rules=_sysu(2))
    # query 2 (id 9) has no match; query 3's only match is in cam2 and removed
    assert (r.queries, r.valid_queries) == (3, 1)
    assert r.cmc.tolist() == [1.0, 1.0] and r.mAP == 1.0 and r.mINP == 1.0


def test_cosine_normalises_and_euclidean_does_not() -> None:
    q = np.array([[1.0, 0.0]])
    g = np.array([[10.0, 1.0], [0.9, 0.0]])  # cosine prefers g1 (same direction), euclid g1 too
    g2 = np.array([[10.0, 0.5], [0.2, 0.3]])  # cosine prefers g0, euclidean prefers g1
    ids = (np.array([1]), np.array([1]), np.array([1, 2]), np.array([2, 2]))
    assert evaluate_features(q, g2, *ids, rules=RankingRules(metric="cosine", max_rank=1)).cmc[0] == 1.0
    assert evaluate_features(q, g2, *ids, rules=RankingRules(metric="euclidean", max_rank=1)).cmc[0] == 0.0
    assert evaluate_features(q, g, *ids, rules=RankingRules(metric="euclidean", max_rank=1)).cmc[0] == 0.0


@st.composite
def problems(draw):
    n_q, n_g = draw(st.integers(1, 12)), draw(st.integers(1, 15))
    ids = st.integers(0, 4)
    dist = draw(hnp.arrays(np.float64, (n_q, n_g), elements=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])))
    q_pids = np.array(draw(st.lists(ids, min_size=n_q, max_size=n_q)))
    g_pids = np.array(draw(st.lists(ids, min_size=n_g, max_size=n_g)))
    q_cams = np.array(draw(st.lists(st.sampled_from([3, 6]), min_size=n_q, max_size=n_q)))
    g_cams = np.array(draw(st.lists(st.sampled_from([1, 2, 4, 5]), min_size=n_g, max_size=n_g)))
    return dist, q_pids, q_cams, g_pids, g_cams


@given(problem=problems(), mode=st.sampled_from(["sysu", "regdb"]), rule=st.booleans(), own=st.booleans(),
       chunk=st.integers(1, 64), dtype=st.sampled_from([np.float32, np.float64]), in_order=st.booleans(),
       shared_cameras=st.booleans())
@settings(max_examples=400, deadline=None)
def test_vectorised_equals_the_naive_loop(problem, mode: str, rule: bool, own: bool, chunk: int, dtype,
                                          in_order: bool, shared_cameras: bool) -> None:
    """Both key paths: float32 similarities (bit keys) and other dtypes (dense ranks), ties included;
    galleries in any id order and in id order (no reordering); the SYSU camera rule and the LLCM
    same-identity-same-camera rule (queries and gallery then share camera numbers)."""
    dist, q_pids, q_cams, g_pids, g_cams = problem
    dist = dist.astype(dtype)
    if in_order:
        g_pids = np.sort(g_pids)
    if shared_cameras:  # LLCM-like: both modalities are seen by the same camera numbers
        q_cams, g_cams = q_cams % 3, g_cams % 3
    pairs = [(3, 2)] if rule else []
    cmc, m_ap, m_inp, n_valid = naive(dist, q_pids, q_cams, g_pids, g_cams, mode, pairs, 10, own)
    rules = RankingRules(cmc="identity" if mode == "sysu" else "image", excluded_cameras=tuple(pairs),
                         same_camera_same_id=own, max_rank=10)
    if n_valid == 0:
        r = evaluate_distance(dist, q_pids, q_cams, g_pids, g_cams, rules)
        assert r.valid_queries == 0
        return
    from msareid.eval import metrics

    chunks = ((s, -dist[s]) for s in metrics._chunks(dist.shape[0], chunk))
    r = metrics.evaluate_similarity(chunks, q_pids, q_cams, g_pids, g_cams, rules)
    d = metrics.evaluate_distance(dist, q_pids, q_cams, g_pids, g_cams, rules, chunk_elements=chunk)
    assert d.mAP == pytest.approx(r.mAP) and np.allclose(d.cmc, r.cmc)
    assert r.valid_queries == n_valid and r.queries == len(q_pids)
    np.testing.assert_allclose(r.cmc, cmc)
    assert r.mAP == pytest.approx(m_ap) and r.mINP == pytest.approx(m_inp)


def test_features_path_matches_distance_path() -> None:
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(30, 8)), rng.normal(size=(50, 8))
    q_pids, g_pids = rng.integers(0, 6, 30), rng.integers(0, 6, 50)
    q_cams, g_cams = rng.choice([3, 6], 30), rng.choice([1, 2, 4, 5], 50)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    a = evaluate_features(q, g, q_pids, q_cams, g_pids, g_cams, SYSU, chunk_elements=100)
    b = evaluate_distance(-(qn @ gn.T), q_pids, q_cams, g_pids, g_cams, SYSU)
    np.testing.assert_allclose(a.cmc, b.cmc)
    assert a.mAP == pytest.approx(b.mAP) and a.mINP == pytest.approx(b.mINP)
