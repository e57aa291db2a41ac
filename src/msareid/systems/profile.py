"""Parameters and multiply-accumulates of the networks, beside the paper's figures (section 4.2)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from msareid.config import Config
from msareid.models.style import StyleAdapter

PAPER = {"params": 24.32e6, "macs_per_image": 5.1689e9, "isa_macs_per_image": 0.0072e9}


def count_macs(module: nn.Module, images: torch.Tensor, *args: object) -> int:
    """Multiply-accumulates of one forward pass, counted by torch.utils.flop_counter (FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(images, *args)
    return counter.get_total_flops() // 2


def profile_model(config: Config, num_classes: int) -> dict[str, Any]:
    """Parameters and MACs per image of F and of one ISA module at the config's image size.

    Parameters count everything F holds (both stems of a two-stream F, the frozen BNNeck bias, its
    feature heads) and the training-only modules systems add beside F (``training_only_params``
    says how many of them); MACs are those of F on one image, which goes through one stem."""
    from msareid.systems.network import build_model, training_only_parameters

    model = build_model(config, num_classes).eval()
    h, w = config.data.height, config.data.width
    images = torch.zeros(1, 3, h, w)
    isa = StyleAdapter()
    extra = training_only_parameters(model)
    return {
        "params": sum(p.numel() for p in model.embed.parameters()) + extra,
        "training_only_params": extra,
        "macs_per_image": count_macs(model.embed, images, 0),
        "isa_params": sum(p.numel() for p in isa.parameters()),
        "isa_macs_per_image": count_macs(isa, images),
        "input_size": [h, w],
        "num_classes": num_classes,
        "backbone": config.model.backbone,
    }
