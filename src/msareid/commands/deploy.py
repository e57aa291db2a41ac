"""Handlers of ``msareid extract``, ``msareid search`` and ``msareid export``."""

from __future__ import annotations

import argparse
import json

from msareid.argtypes import positive_int
from msareid.search import INDEXES


def add_extract_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a trained model (RUN_DIR/last.pt)")
    p.add_argument("--images", required=True, help="a folder of images (searched recursively) or a manifest CSV")
    p.add_argument("--out", required=True, metavar="FEATURES.npz")
    p.add_argument("--modality", choices=("rgb", "ir"),
                   help="modality of a folder's images (needed by a model with a stem for each; default rgb "
                        "otherwise); a manifest gives each image's own")
    p.add_argument("--flip", action="store_true", help="average the features of each image and its mirror")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--device", default="auto")


def cmd_extract(args: argparse.Namespace) -> int:
    from msareid.allocator import reuse_freed_memory
    from msareid.search import extract_to_file

    reuse_freed_memory()  # batch after batch through the network: no page faults for each
    done = extract_to_file(args.checkpoint, args.images, args.out, args.modality, args.flip, args.batch_size,
                           args.device)
    print(f"wrote {done.path}: {done.images} images x {done.dim} dims ({'flip-averaged ' if args.flip else ''}"
          f"L2-normalised test features: BNNeck, or the feature head a system made its test feature)")
    return 0


def add_search_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="the model that extracted the gallery")
    p.add_argument("--gallery", required=True, metavar="FEATURES.npz", help="a file of msareid extract")
    p.add_argument("--query", required=True, nargs="+", metavar="IMAGE", help="query image(s)")
    p.add_argument("--topk", type=positive_int, default=10)
    p.add_argument("--html", metavar="OUT.html", help="also write a page with the thumbnails")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--flip", action="store_true")
    p.add_argument("--query-modality", choices=("rgb", "ir"),
                   help="modality of the query images (needed by a model with a stem for each, model.two_stream)")
    p.add_argument("--index", choices=INDEXES, default="exact",
                   help="exact: chunked brute force (default); faiss: an inner-product index (needs faiss)")
    p.add_argument("--device", default="auto")


def cmd_search(args: argparse.Namespace) -> int:
    from msareid.allocator import reuse_freed_memory
    from msareid.fileio import display_path
    from msareid.search import search_gallery, write_search_page

    reuse_freed_memory()
    found = search_gallery(args.checkpoint, args.gallery, args.query, args.topk, args.index, args.flip, args.device,
                           args.query_modality)
    if args.html:
        write_search_page(found["results"], args.html)
    if args.json:
        print(json.dumps(found))
        return 0
    for res in found["results"]:  # names that are not UTF-8 as \xNN escapes: printable in any locale
        print(f"query {display_path(res['query'])}:")
        for m in res["matches"]:
            known = f"  (id {m['pid']})" if m["pid"] >= 0 else ""
            print(f"  {m['rank']:3d}. {m['score']:.4f}  {display_path(m['path'])}{known}")
    if args.html:
        print(f"wrote {args.html}")
    return 0


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--format", choices=("onnx",), default="onnx")
    p.add_argument("--out", required=True, metavar="MODEL.onnx")
    p.add_argument("--opset", type=int, default=17)


def cmd_export(args: argparse.Namespace) -> int:
    import onnx

    from msareid.export import export_onnx

    path = export_onnx(args.checkpoint, args.out, args.opset)
    graph = onnx.load(str(path), load_external_data=False).graph
    inputs, outputs = [i.name for i in graph.input], [o.name for o in graph.output]
    extra = ", 'modality' (N int64: RGB 0, IR 1)" if "modality" in inputs else ""
    shown = ", ".join(f"'{o}'" for o in outputs)
    print(f"wrote {path}: input 'images' (N x 3 x H x W, ImageNet-normalised){extra}, outputs {shown}; "
          "N is dynamic")
    return 0
