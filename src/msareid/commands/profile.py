"""Handler of ``msareid profile``: parameters and multiply-accumulates beside the paper's figures."""

from __future__ import annotations

import argparse
import json


def cmd_profile(args: argparse.Namespace) -> int:
    from msareid.config import config_to_dict
    from msareid.data.datasets import reader_class
    from msareid.errors import UserError
    from msareid.recipes import load_config
    from msareid.systems import describe, describe_pieces
    from msareid.systems.profile import PAPER, profile_model

    cfg = load_config(args.config, [*args.set, "model.pretrained=none"])
    num_classes = args.num_classes or reader_class(cfg.data.name).num_classes
    if not num_classes:
        raise UserError(f"--num-classes is needed for data.name = {cfg.data.name!r}")
    out = profile_model(cfg, num_classes)
    if args.json:
        print(json.dumps(out))
        return 0
    h, w = out["input_size"]
    resolved = {f"{section}.{key}": value for section, table in config_to_dict(cfg).items()
                for key, value in table.items()}
    pieces = describe_pieces(resolved)
    network = f" with {pieces} ({describe(cfg)}; paper's figures are MSA's F)" if pieces != "1-stem" else ""
    print(f"{cfg.model.backbone}{network} at {h}x{w}, {num_classes} classes (paper: ResNet-50, 288x144, 395 classes)")
    print(f"{'':28}{'msareid':>14}{'paper':>14}")
    print(f"{'parameters (F)':28}{out['params'] / 1e6:13.2f}M{PAPER['params'] / 1e6:13.2f}M")
    if out["training_only_params"]:
        print(f"{'  of which training only':28}{out['training_only_params'] / 1e6:13.2f}M")
    print(f"{'MACs per image (F)':28}{out['macs_per_image'] / 1e9:13.4f}G{PAPER['macs_per_image'] / 1e9:13.4f}G")
    print(f"{'ISA parameters (one module)':28}{out['isa_params']:14d}{'<100 (both)':>14}")
    isa_macs, paper_isa = out["isa_macs_per_image"] / 1e9, PAPER["isa_macs_per_image"] / 1e9
    print(f"{'ISA MACs per image (one)':28}{isa_macs:13.4f}G{paper_isa:13.4f}G")
    return 0
