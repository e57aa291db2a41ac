"""Handler of ``msareid profile``: parameters and multiply-accumulates beside the paper's figures."""

from __future__ import annotations

import argparse
import json

PAPER = {"params": 24.32e6, "macs_per_image": 5.1689e9, "isa_macs_per_image": 0.0072e9}


def count_macs(module, images) -> int:
    """Multiply-accumulates of one forward pass, counted by torch.utils.flop_counter (FLOPs / 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(images)
    return counter.get_total_flops() // 2


def cmd_profile(args: argparse.Namespace) -> int:
    import torch

    from msareid.config import load_config
    from msareid.engine import KNOWN_CLASSES, build_model
    from msareid.errors import UserError
    from msareid.models import StyleAdapter

    cfg = load_config(args.config, [*args.set, "model.pretrained=none"])
    num_classes = args.num_classes or KNOWN_CLASSES.get(cfg.data.name)
    if not num_classes:
        raise UserError(f"--num-classes is needed for data.name = {cfg.data.name!r}")
    model = build_model(cfg, num_classes).eval()
    h, w = cfg.data.height, cfg.data.width
    images = torch.zeros(1, 3, h, w)
    isa = StyleAdapter()
    out = {
        "params": sum(p.numel() for p in model.embed.parameters()),
        "macs_per_image": count_macs(model.embed, images),
        "isa_params": sum(p.numel() for p in isa.parameters()),
        "isa_macs_per_image": count_macs(isa, images),
        "input_size": [h, w],
        "num_classes": num_classes,
        "backbone": cfg.model.backbone,
    }
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{cfg.model.backbone} at {h}x{w}, {num_classes} classes (paper: ResNet-50, 288x144, 395 classes)")
    print(f"{'':28}{'msareid':>14}{'paper':>14}")
    print(f"{'parameters (F)':28}{out['params'] / 1e6:13.2f}M{PAPER['params'] / 1e6:13.2f}M")
    print(f"{'MACs per image (F)':28}{out['macs_per_image'] / 1e9:13.4f}G{PAPER['macs_per_image'] / 1e9:13.4f}G")
    print(f"{'ISA parameters (one module)':28}{out['isa_params']:14d}{'<100 (both)':>14}")
    isa_macs, paper_isa = out["isa_macs_per_image"] / 1e9, PAPER["isa_macs_per_image"] / 1e9
    print(f"{'ISA MACs per image (one)':28}{isa_macs:13.4f}G{paper_isa:13.4f}G")
    return 0
