"""The baseline B of Table 4: F (backbone, global average pooling, BNNeck, classifier) trained on
the RGB and IR images with the ID loss and the multi-modality triplet loss (Eq. 10), no ISA."""

from __future__ import annotations

from typing import Any

from msareid.systems.base import System

NO_ISA: dict[str, Any] = {"model.r2i": False, "model.i2r": False, "loss.source_loss": "none",
                          "loss.target_loss": "none"}


class Baseline(System):
    """B: the network and losses every other system builds on; its hooks add nothing."""

    name = "b"
    title = "B"
    summary = "the baseline of Table 4: F on RGB and IR images, ID + multi-modality triplet losses"
    recipe = NO_ISA
