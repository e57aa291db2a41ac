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


@pytest.mark.parametrize("world", [2, 3, 4])
def test_ranks_share_one_draw_and_see_different_batches(world: int) -> None:
    ranks = [CrossModalitySampler(RGB, IR, 3, 2, 5, rank=r, world_size=world) for r in range(world)]
    for s in ranks:
        s.set_epoch(1)
    per_rank = [list(s) for s in ranks]
    single = CrossModalitySampler(RGB, IR, 3, 2, 5)
    assert all(len(b) == len(ranks[0]) == -(-single.batches_per_epoch // world) for b in per_rank)
    interleaved = [per_rank[r][i] for i in range(len(per_rank[0])) for r in range(world)]
    assert interleaved == ranks[0].epoch_batches()
    single.set_epoch(1)
    assert interleaved[: single.batches_per_epoch] == single.epoch_batches()
    assert per_rank[0] != per_rank[1]


def test_draws_do_not_depend_on_the_world_size() -> None:
    one = CrossModalitySampler(RGB, IR, 3, 2, 5)
    two = CrossModalitySampler(RGB, IR, 3, 2, 5, rank=0, world_size=2)
    assert two.epoch_batches()[: one.batches_per_epoch] == one.epoch_batches()


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
