"""Handlers of the data subcommands: synth, check-data, preview, config, cache."""

from __future__ import annotations

import argparse
import json
import time


def cmd_synth(args: argparse.Namespace) -> int:
    from msareid.data.synthetic import RegdbSpec, SysuSpec, write_regdb, write_sysu

    start = time.perf_counter()
    if args.dataset == "sysu":
        spec = SysuSpec(ids=args.ids, rgb_images=args.rgb_images, ir_images=args.ir_images, seed=args.seed,
                        frame_height=args.frame_height)
        root = write_sysu(args.out, spec, workers=args.workers)
    else:
        root = write_regdb(args.out, RegdbSpec(ids=args.ids, images=args.images, seed=args.seed), args.workers)
    print(f"wrote a synthetic {args.dataset} dataset ({args.ids} ids, seed {args.seed}) to {root} "
          f"in {time.perf_counter() - start:.1f}s")
    return 0


def cmd_check_data(args: argparse.Namespace) -> int:
    from msareid.data import sources
    from msareid.data.regdb import RegDB
    from msareid.data.sysu import SysuMM01

    if args.dataset == "sysu":
        summary = sources.sysu_summary(SysuMM01(args.root), verify=args.verify_images)
    elif args.dataset == "regdb":
        summary = sources.regdb_summary(RegDB(args.root, args.trial), verify=args.verify_images)
    else:
        summary = sources.manifest_summary(args.root, verify=args.verify_images)
    print(json.dumps(summary) if args.json else sources.format_summary(summary))
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from msareid.data.sources import train_records
    from msareid.report.grid import identity_rows, image_grid, save_png

    rgb, ir = train_records(args.dataset, args.root, args.trial)
    rows, labels = identity_rows(rgb, ir, ids=args.ids, per_modality=args.per_modality)
    path = save_png(image_grid(rows, labels), args.out)
    print(f"wrote {path}: {len(rows)} training identities, up to {args.per_modality} RGB then IR images each")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from msareid.config import dump_toml, load_config

    print(dump_toml(load_config(args.config, args.set)), end="")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from msareid.config import load_config
    from msareid.data.cache import ImageCache, default_cache_dir
    from msareid.data.sources import train_records

    cfg = load_config(args.config, args.set)
    rgb, ir = train_records(cfg.data.name, cfg.data.root, cfg.data.trial)
    folder = default_cache_dir(cfg.data.cache_dir)
    for name, records in (("rgb", rgb), ("ir", ir)):
        start = time.perf_counter()
        cache = ImageCache.build([r.path for r in records], cfg.data.height, cfg.data.width, folder,
                                 progress=not args.quiet, desc=f"decode {name}")
        print(f"{name}: {len(cache)} images at {cfg.data.height}x{cfg.data.width} in {cache.path} "
              f"({time.perf_counter() - start:.1f}s)")
    return 0
