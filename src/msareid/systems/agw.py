"""AGW (Ye et al., "Deep Learning for Person Re-identification: A Survey and Outlook", TPAMI 2021),
the first row of the MSA paper's Table 3, as its reference trains it (Cross-Modal-Re-ID-baseline,
``--method agw``): F with a stem of its own for RGB and for IR (the rest shared), non-local blocks
and GeM pooling (:mod:`msareid.models.agw`), the weighted regularised triplet (WRT), 8 ids x (4 + 4)
a batch, no random erasing, SGD with Nesterov at 0.1 (heads) / 0.01 (the rest), 81 epochs.

MSA "with the same backbone, data and network augmentation" (Table 3's MSA row) is
:data:`NETWORK` plus MSA's settings: the two rows differ by MSA's contribution only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msareid.systems.base import System
from msareid.systems.baseline import NO_ISA

if TYPE_CHECKING:
    from msareid.config import Config

# The training recipe both Table 3 references share: batch, augmentation, SGD, schedule.
SGD_RECIPE: dict[str, Any] = {
    "sampler.num_ids": 8, "sampler.num_instances": 4, "data.random_erasing": 0.0,
    "train.optimizer": "sgd", "train.lr": 0.1, "train.base_lr_factor": 0.1, "train.momentum": 0.9,
    "train.nesterov": True, "train.weight_decay": 5e-4, "train.epochs": 81, "train.warmup_epochs": 10,
    "train.milestones": [20, 50], "train.lr_decay": 0.1,
}
# AGW's network, triplet loss and training recipe: what MSA(AGW) runs on.
NETWORK: dict[str, Any] = {
    "model.two_stream": True, "model.non_local": "one", "model.pooling": "gem",
    "model.parts": 0, "model.graph_attention": False,
    "loss.triplet": "wrt", **SGD_RECIPE,
}


class Agw(System):
    """AGW: its network and recipe, no ISA, ID + WRT at equal weights."""

    name = "agw"
    title = "AGW"
    summary = "Table 3's AGW (TPAMI 2021): two stems, non-local blocks, GeM, WRT, SGD, 81 epochs"
    recipe = {**NETWORK, **NO_ISA, "loss.gamma": 1.0}
    network = NETWORK
    pieces = (("model.non_local", "NL"), ("model.pooling", "GeM"))

    def matches(self, config: Config) -> bool:
        m = config.model
        return m.two_stream and m.non_local != "off" and m.pooling == "gem" and config.loss.triplet == "wrt"
