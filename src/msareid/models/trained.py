"""Building the network a config describes, and loading a trained one from its checkpoint.

The only place in :mod:`msareid.models` that reads a whole :class:`~msareid.config.Config`: the
constructors of the networks take typed arguments.
"""

from __future__ import annotations

import dataclasses
import os

import torch

from msareid.config import Config, config_from_dict
from msareid.errors import UserError
from msareid.models.embedding import EmbeddingNet
from msareid.models.msa import MSANet
from msareid.pixels import IMAGENET_MEAN, IMAGENET_STD


def build_model(config: Config, num_classes: int) -> MSANet:
    """The MSA network (or the baseline, or an ablation) described by ``config.model``."""
    m = config.model
    try:
        embed = EmbeddingNet(m.backbone, num_classes, m.pretrained, m.last_stride, m.checkpoint_segments,
                             two_stream=m.two_stream, non_local=m.non_local, pooling=m.pooling,
                             parts=m.parts)
    except ValueError as exc:  # a combination the backbone does not offer
        raise UserError(f"model: {exc}") from None
    return MSANet(embed, r2i=m.r2i, i2r=m.i2r, isa_init=m.isa_init, isa_space=m.isa_space,
                  pixel_mean=IMAGENET_MEAN, pixel_std=IMAGENET_STD, generated_stem=m.generated_stem,
                  graph=m.graph_attention)


def load_trained(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> tuple[MSANet, Config, dict]:
    """A trained network (eval mode), its config and the checkpoint dict, from a checkpoint file."""
    from msareid.training.checkpoint import load_checkpoint

    state = load_checkpoint(path)
    config = config_from_dict(state["config"], source=f"{path} (config)")
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, pretrained="none"))
    model = build_model(config, int(state["num_classes"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise UserError(f"checkpoint {path} does not match its own config ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval(), config, state
