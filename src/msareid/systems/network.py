"""Building the network a config describes (F, ISA, and each system's pieces). The constructors of
the networks take typed arguments; this is where a whole :class:`~msareid.config.Config` meets
them. (Loading a trained network from a checkpoint is :func:`msareid.inference.load_trained`.)"""

from __future__ import annotations

from torch import nn

from msareid.config import Config
from msareid.errors import UserError
from msareid.models.embedding import EmbeddingNet
from msareid.models.msa import MSANet
from msareid.pixels import IMAGENET_MEAN, IMAGENET_STD
from msareid.systems import SYSTEMS


def build_model(config: Config, num_classes: int) -> MSANet:
    """The network of ``config.model``: F, then each system's pieces in F, then ISA, then each
    system's training-only modules (this order fixes the random initialisation of each part)."""
    m = config.model
    try:
        embed = EmbeddingNet(m.backbone, num_classes, m.pretrained, m.last_stride, m.checkpoint_segments,
                             two_stream=m.two_stream, non_local=m.non_local, pooling=m.pooling)
    except ValueError as exc:  # a combination the backbone does not offer
        raise UserError(f"model: {exc}") from None
    for s in SYSTEMS.values():
        s.extend_embedding(config, embed)
    net = MSANet(embed, r2i=m.r2i, i2r=m.i2r, isa_init=m.isa_init, isa_space=m.isa_space,
                 pixel_mean=IMAGENET_MEAN, pixel_std=IMAGENET_STD, generated_stem=m.generated_stem)
    for s in SYSTEMS.values():
        s.extend_network(config, net)
    return net


def head_modules(net: MSANet) -> list[nn.Module]:
    """The modules that learn at ``train.lr``: BNNeck, classifier, and those the systems name."""
    return [net.embed.bnneck, net.embed.classifier, *(m for s in SYSTEMS.values() for m in s.head_modules(net))]


def training_only_parameters(net: MSANet) -> int:
    """Parameters of the modules that serve training only (beside F and ISA)."""
    return sum(p.numel() for s in SYSTEMS.values() for m in s.training_only(net) for p in m.parameters())


def initial_state(net: MSANet) -> dict[str, float]:
    """The systems' per-epoch numbers at the start of training."""
    return {k: v for s in SYSTEMS.values() for k, v in s.initial_state(net).items()}


def next_state(state: dict[str, float], epoch_means: dict[str, float]) -> dict[str, float]:
    """The systems' per-epoch numbers for the next epoch."""
    return {k: v for s in SYSTEMS.values() for k, v in s.end_epoch(state, epoch_means).items()}
