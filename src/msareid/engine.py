"""Building the network from a whole config (one of the few modules that see all of it)."""

from __future__ import annotations

from msareid.config import Config
from msareid.models import EmbeddingNet, MSANet

# Training identities of the paper's datasets, for commands that need the classifier size without
# reading the data (e.g. ``msareid profile``).
KNOWN_CLASSES = {"sysu": 395, "regdb": 206}


def build_model(config: Config, num_classes: int) -> MSANet:
    """The MSA network (or the baseline, or an ablation) described by ``config.model``."""
    m = config.model
    embed = EmbeddingNet(m.backbone, num_classes, m.pretrained, m.last_stride)
    return MSANet(embed, r2i=m.r2i, i2r=m.i2r, isa_init=m.isa_init)
