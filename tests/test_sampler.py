import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from msareid.data.sampler import CrossModalitySampler
from msareid.errors import UserError


def _labels(rng: np.random.Generator, ids: int, lo: int, hi: int) -> np.ndarray:
    return np.concatenate([np.full(rng.integers(lo, hi + 1), i) for i in range(ids)])


RGB = _labels(np.random.default_rng(0), 12, 1, 9)
IR = _labels(np.random.default_rng(1), 12, 1, 6)


@given(p=st.integers(2, 6), k=st.integers(1, 5), seed=st.integers(0, 99), epoch=st.integers(0, 5))
@settings(max_examples=40, deadline=None)
def test_batches_hold_p_ids_with_k_paired_images(p: int, k: int, seed: int, epoch: int) -> None:
    sampler = CrossModalitySampler(RGB, IR, p, k, seed)
    sampler.set_epoch(epoch)
    batches = list(sampler)
    assert len(batches) == max(len(RGB), len(IR)) // (p * k) + 1 == len(sampler)
    for batch in batches:
        assert len(batch) == p * k
        rgb_ids = [int(RGB[i]) for i, _, _ in batch]
        ir_ids = [int(IR[j]) for _, j, _ in batch]
        assert rgb_ids == ir_ids  # sample k of RGB and of IR share an identity
        assert len(set(rgb_ids)) == p and all(rgb_ids.count(x) == k for x in set(rgb_ids))
        for pid in set(rgb_ids):  # without replacement when the modality has enough images
            for labels, picks in ((RGB, [i for i, _, _ in batch]), (IR, [j for _, j, _ in batch])):
                mine = [x for x in picks if labels[x] == pid]
                if (labels == pid).sum() >= k:
                    assert len(set(mine)) == k


def test_draws_with_replacement_when_a_modality_has_fewer() -> None:
    rgb, ir = np.array([0, 1, 1, 1, 1]), np.array([0, 0, 0, 0, 1])
    batch = next(iter(CrossModalitySampler(rgb, ir, 2, 4, 0)))
    assert [i for i, _, _ in batch if rgb[i] == 0] == [0, 0, 0, 0]


def test_deterministic_for_seed_and_epoch() -> None:
    a, b = CrossModalitySampler(RGB, IR, 3, 2, 7), CrossModalitySampler(RGB, IR, 3, 2, 7)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    assert list(CrossModalitySampler(RGB, IR, 3, 2, 8)) != list(a)


def test_resume_from_a_batch() -> None:
    sampler = CrossModalitySampler(RGB, IR, 3, 2, 7)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start=3)
    assert list(sampler) == full[3:]


@pytest.mark.parametrize("world", [2, 3, 6])
def test_ranks_split_each_global_batch_by_identity(world: int) -> None:
    """The configured P ids x K images is the global batch: every rank steps through the same
    batches and takes P / world of their identities; together they are one process's batches."""
    ranks = [CrossModalitySampler(RGB, IR, 6, 2, 5, rank=r, world_size=world) for r in range(world)]
    single = CrossModalitySampler(RGB, IR, 6, 2, 5)
    for s in (*ranks, single):
        s.set_epoch(1, start=2)
    per_rank = [list(s) for s in ranks]
    assert all(len(s) == single.batches_per_epoch for s in ranks)
    joined = [sum((per_rank[r][i] for r in range(world)), []) for i in range(len(per_rank[0]))]
    assert joined == list(single)
    for batches in per_rank:  # each share: whole identities, 6 / world of them, K of each
        ids = [int(RGB[i]) for i, _, _ in batches[0]]
        assert len(ids) == 6 // world * 2 and len(set(ids)) == 6 // world


def test_identities_must_split_over_the_ranks() -> None:
    expected = (r"sampler.num_ids = 6 identities a batch do not split over 4 processes: run 1, 2, 3, 6 "
                r"processes, or set sampler.num_ids to a multiple of 4 \(4, 8, 12")
    with pytest.raises(UserError, match=expected):
        CrossModalitySampler(RGB, IR, 6, 2, 5, rank=0, world_size=4)


def test_global_random_state_is_untouched() -> None:
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    states = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    list(CrossModalitySampler(RGB, IR, 4, 4, 3))
    assert random.getstate() == states[0]
    np.testing.assert_array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.get_rng_state(), states[2])


def test_too_few_shared_identities() -> None:
    with pytest.raises(UserError, match="needs 6 identities with both RGB and IR images, the training set has 2"):
        CrossModalitySampler(np.array([0, 1, 2]), np.array([1, 2, 3]), 6, 4)
