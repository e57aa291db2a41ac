"""Handlers of the data subcommands: synth, check-data, preview, config, cache."""

from __future__ import annotations

import argparse
import json
import time


def cmd_synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    from msareid.data.datasets import reader_class, synthetic_names
    from msareid.errors import UserError

    reader = reader_class(args.dataset)
    if getattr(args, "ir_camera", None) and args.ir_camera not in reader.synth_ir_cameras:
        offered = [n for n in synthetic_names() if args.ir_camera in reader_class(n).synth_ir_cameras]
        raise UserError(f"--ir-camera {args.ir_camera} is an option of synth {', '.join(offered)}; a synthetic "
                        f"{reader.title} has its own dataset's IR camera")
    start = time.perf_counter()
    root = reader.write_synthetic(Path(args.out), args.ids, args.seed, args.workers, args)
    camera = f", {args.ir_camera} IR cameras" if getattr(args, "ir_camera", None) else ""
    print(f"wrote a synthetic {args.dataset} dataset ({args.ids} ids, seed {args.seed}{camera}) to {root} "
          f"in {time.perf_counter() - start:.1f}s")
    return 0


def cmd_check_data(args: argparse.Namespace) -> int:
    from msareid.data.base import format_summary
    from msareid.data.datasets import open_dataset

    reader = open_dataset(args.dataset, args.root, args.trial)
    summary = reader.summary(verify=args.verify_images)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(format_summary(summary))
    h, w = reader.image_size
    directions = f"; directions {', '.join(reader.directions)} (first: default)" if reader.directions else ""
    print(f"  reference image size {h} x {w}; ranking rules {reader.rules.name}{directions}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from msareid.data.datasets import open_dataset
    from msareid.report.grid import identity_rows, image_grid, save_png

    rgb, ir = open_dataset(args.dataset, args.root, args.trial).train()
    rows, labels = identity_rows(rgb, ir, ids=args.ids, per_modality=args.per_modality)
    path = save_png(image_grid(rows, labels), args.out)
    print(f"wrote {path}: {len(rows)} training identities, up to {args.per_modality} RGB then IR images each")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from msareid.config import dump_toml
    from msareid.recipes import load_config

    print(dump_toml(load_config(args.config, args.set)), end="")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from msareid.data.cache import ImageCache, default_cache_dir
    from msareid.data.datasets import open_dataset
    from msareid.recipes import load_config

    cfg = load_config(args.config, args.set)
    rgb, ir = open_dataset(cfg.data.name, cfg.data.root, cfg.data.trial).train()
    folder = default_cache_dir(cfg.data.cache_dir)
    for name, records in (("rgb", rgb), ("ir", ir)):
        start = time.perf_counter()
        cache = ImageCache.build([r.path for r in records], cfg.data.height, cfg.data.width, folder,
                                 progress=not args.quiet, desc=f"decode {name}")
        print(f"{name}: {len(cache)} images at {cfg.data.height}x{cfg.data.width} in {cache.path} "
              f"({time.perf_counter() - start:.1f}s)")
    return 0
