"""The cross-modality identity sampler (section 4.1: 6 ids x (4 RGB + 4 IR) a batch).

Each batch holds P distinct identities, each with K RGB and K IR images; RGB sample k and IR sample
k of a batch share an identity. Within an identity, images are drawn without replacement when the
modality has at least K of them, with replacement otherwise. An epoch is
``max(#RGB, #IR) // (P * K) + 1`` batches (the reference code's definition). The draws depend only
on (seed, epoch), never on global random state or on the number of ranks.

Under several ranks the P ids x K images per modality are the *global* batch: every rank steps
through the same batches and takes its share of each, P / world_size identities (rank r the
r-th group of them, with their K RGB and K IR images), so N ranks see together exactly what one
process sees (P must be divisible by the world size).

Each item also carries a seed for that sample's augmentation, so the augmented batch is a pure
function of (seed, epoch, batch): the same with any number of loader workers or ranks, and after a
resume.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from msareid.errors import UserError

Batch = list[tuple[int, int, int]]  # (rgb index, ir index, augmentation seed)


class CrossModalitySampler:
    """Batch sampler yielding lists of (rgb index, ir index, augmentation seed); see the module docstring."""

    def __init__(
        self,
        rgb_labels: np.ndarray,
        ir_labels: np.ndarray,
        num_ids: int = 6,
        num_instances: int = 4,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        rgb_labels, ir_labels = np.asarray(rgb_labels), np.asarray(ir_labels)
        shared = np.intersect1d(rgb_labels, ir_labels)
        if shared.size < num_ids:
            raise UserError(
                f"the sampler needs {num_ids} identities with both RGB and IR images, the training "
                f"set has {shared.size}; lower sampler.num_ids or add data"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
        check_divisible(num_ids, world_size)
        self.ids = shared
        self._rgb = {int(i): np.flatnonzero(rgb_labels == i) for i in shared}
        self._ir = {int(i): np.flatnonzero(ir_labels == i) for i in shared}
        self.num_ids, self.num_instances = num_ids, num_instances
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.batches_per_epoch = max(len(rgb_labels), len(ir_labels)) // (num_ids * num_instances) + 1
        self.epoch = 0
        self.start = 0
        self._drawn: tuple[int, list[Batch]] | None = None

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch to draw, and the first of this rank's batches to yield (for resume)."""
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        """Batches (this rank's shares of them) in a full epoch: the same for every world size."""
        return self.batches_per_epoch

    def _draw(self, rng: np.random.Generator, pool: np.ndarray) -> np.ndarray:
        return rng.choice(pool, self.num_instances, replace=pool.size < self.num_instances)

    def epoch_batches(self) -> list[Batch]:
        """Every global batch of the current epoch (all ranks' shares)."""
        if self._drawn is not None and self._drawn[0] == self.epoch:
            return self._drawn[1]
        rng = np.random.default_rng([self.seed, self.epoch])
        batches = []
        for _ in range(self.batches_per_epoch):
            batch: Batch = []
            for pid in rng.choice(self.ids, self.num_ids, replace=False):
                rgb, ir = self._draw(rng, self._rgb[int(pid)]), self._draw(rng, self._ir[int(pid)])
                seeds = rng.integers(0, 2**62, size=self.num_instances)
                batch.extend(zip(rgb.tolist(), ir.tolist(), seeds.tolist()))
            batches.append(batch)
        self._drawn = (self.epoch, batches)  # drawn once an epoch, whoever asks
        return batches

    def __iter__(self) -> Iterator[Batch]:
        share = self.num_ids // self.world_size * self.num_instances  # items of this rank's identities
        for batch in self.epoch_batches()[self.start :]:
            yield batch[self.rank * share : (self.rank + 1) * share]


def check_divisible(num_ids: int, world_size: int) -> None:
    """P identities a global batch split evenly over the ranks, or a one-line error saying which
    world sizes (and which P) would work."""
    if num_ids % world_size == 0:
        return
    sizes = [str(w) for w in range(1, num_ids + 1) if num_ids % w == 0]
    multiples = [str(world_size * m) for m in range(max(1, num_ids // world_size), num_ids // world_size + 3)]
    raise UserError(f"sampler.num_ids = {num_ids} identities a batch do not split over {world_size} processes: "
                    f"run {', '.join(sizes)} processes, or set sampler.num_ids to a multiple of {world_size} "
                    f"({', '.join(multiples)}; this changes the experiment)")
