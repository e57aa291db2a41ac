"""The learning-rate schedule as a pure function of the epoch (the reference code's schedule)."""

from __future__ import annotations

from collections.abc import Sequence


def lr_at(epoch: int, base_lr: float, warmup_epochs: int = 10, milestones: Sequence[int] = (20, 50),
          decay: float = 0.1) -> float:
    """Learning rate of ``epoch`` (0-based): linear warm-up, then x ``decay`` at each milestone.

    ``base_lr * (epoch + 1) / warmup_epochs`` during warm-up; from then on ``base_lr`` times
    ``decay`` for every milestone already reached (epochs 20 and 50 in the paper's setting).
    """
    if epoch < warmup_epochs:
        return base_lr * (epoch + 1) / warmup_epochs
    return base_lr * decay ** sum(epoch >= m for m in milestones)
