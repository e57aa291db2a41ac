"""Handlers of ``msareid extract``, ``msareid search`` and ``msareid export``."""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import os
import shutil
from pathlib import Path

from msareid.argtypes import positive_int
from msareid.errors import UserError, warn
from msareid.fileio import remove_stale_temporaries, reserve


def add_extract_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a trained model (RUN_DIR/last.pt)")
    p.add_argument("--images", required=True, help="a folder of images (searched recursively) or a manifest CSV")
    p.add_argument("--out", required=True, metavar="FEATURES.npz")
    p.add_argument("--modality", choices=("rgb", "ir"), default="rgb", help="modality of a folder's images")
    p.add_argument("--flip", action="store_true", help="average the features of each image and its mirror")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--device", default="auto")


def cmd_extract(args: argparse.Namespace) -> int:
    import numpy as np

    from msareid.data.manifest import read_manifest
    from msareid.eval.gallery import save_features
    from msareid.extractor import FeatureExtractor, list_images

    source = Path(args.images)
    if source.is_file():
        records = [r for split in read_manifest(source).values() for r in split]
        paths = [r.path for r in records]
        pid, cam = [r.pid for r in records], [r.camera for r in records]
        modality = [r.modality.value for r in records]
    elif source.is_dir():
        paths = list_images(source)
        pid, cam, modality = [-1] * len(paths), [-1] * len(paths), [args.modality] * len(paths)
    else:
        raise UserError(f"--images {source} is neither a folder nor a manifest file")
    fx = FeatureExtractor(args.checkpoint, args.device, args.batch_size, args.flip)
    from tqdm import tqdm

    step = 4096  # images decoded at a time; the features go to a memory map on disk, not to RAM
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_path.parent)  # scratch files of extractions killed earlier
    scratch = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp.npy")
    needed = 2 * len(paths) * fx.dim * 4 + 2**20  # the scratch map and the file written from it
    free = shutil.disk_usage(out_path.parent).free
    if free < needed:
        raise UserError(f"extracting {len(paths)} x {fx.dim} features needs {needed / 2**30:.2f} GiB in "
                        f"{out_path.parent} but {free / 2**30:.2f} GiB are free; write elsewhere with --out")
    try:
        feats = np.lib.format.open_memmap(scratch, mode="w+", dtype=np.float32, shape=(len(paths), fx.dim))
        reserve(scratch)
        for start in tqdm(range(0, len(paths), step), desc="extract", disable=len(paths) <= step):
            feats[start : start + step] = fx(paths[start : start + step])
        out = save_features(out_path, feats, paths, np.asarray(pid), np.asarray(cam), modality, fx.model_id)
        del feats
    finally:
        scratch.unlink(missing_ok=True)
    print(f"wrote {out}: {len(paths)} images x {fx.dim} dims ({'flip-averaged ' if args.flip else ''}"
          f"L2-normalised BNNeck features)")
    return 0


def add_search_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="the model that extracted the gallery")
    p.add_argument("--gallery", required=True, metavar="FEATURES.npz", help="a file of msareid extract")
    p.add_argument("--query", required=True, nargs="+", metavar="IMAGE", help="query image(s)")
    p.add_argument("--topk", type=positive_int, default=10)
    p.add_argument("--html", metavar="OUT.html", help="also write a page with the thumbnails")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--flip", action="store_true")
    p.add_argument("--index", choices=("exact", "faiss"), default="exact",
                   help="exact: chunked brute force (default); faiss: an inner-product index (needs faiss)")
    p.add_argument("--device", default="auto")


def _faiss_top_k(query, gallery, k):
    try:
        import faiss
    except ImportError:
        raise UserError("--index faiss needs the faiss package: pip install faiss-cpu (or use --index exact)") from None
    import numpy as np

    index = faiss.IndexFlatIP(gallery.shape[1])
    for start in range(0, gallery.shape[0], 65536):
        index.add(np.ascontiguousarray(gallery[start : start + 65536], dtype=np.float32))
    scores, ids = index.search(np.ascontiguousarray(query, dtype=np.float32), k)
    return ids, scores


def cmd_search(args: argparse.Namespace) -> int:
    from msareid.eval.gallery import FeatureFile, top_k
    from msareid.extractor import FeatureExtractor

    gallery = FeatureFile(args.gallery)
    fx = FeatureExtractor(args.checkpoint, args.device, flip=args.flip)
    if fx.dim != gallery.dim:
        raise UserError(f"{args.gallery} holds {gallery.dim}-d features but {args.checkpoint} gives {fx.dim}-d: "
                        "extract the gallery with the same model")
    if gallery.model_id and gallery.model_id != fx.model_id:
        warn(f"{args.gallery} was extracted by another model ({gallery.model_id}) than {args.checkpoint} "
             f"({fx.model_id}): scores compare features of two models")
    for q in args.query:
        if not Path(q).is_file():
            raise UserError(f"query image {q} does not exist")
    query = fx(args.query)
    ids, scores = (_faiss_top_k if args.index == "faiss" else top_k)(query, gallery.feat, args.topk)
    results = []
    for q, row, srow in zip(args.query, ids, scores):
        results.append({"query": q, "matches": [
            {"rank": r + 1, "index": int(i), "score": float(s), "path": str(gallery.paths[i]),
             "pid": int(gallery.pid[i]), "camera": int(gallery.cam[i])}
            for r, (i, s) in enumerate(zip(row, srow))]})
    if args.html:
        _write_html(results, args.html)
    if args.json:
        print(json.dumps({"gallery": str(args.gallery), "size": int(gallery.feat.shape[0]), "results": results}))
    else:
        for res in results:
            print(f"query {res['query']}:")
            for m in res["matches"]:
                known = f"  (id {m['pid']})" if m["pid"] >= 0 else ""
                print(f"  {m['rank']:3d}. {m['score']:.4f}  {m['path']}{known}")
        if args.html:
            print(f"wrote {args.html}")
    return 0


def _thumb(path: str) -> str:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail((96, 192))
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=85)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    except OSError:
        return ""


def _write_html(results: list[dict], out: str) -> None:
    blocks = []
    for res in results:
        cells = "".join(
            f'<figure><img src="{_thumb(m["path"])}" alt=""><figcaption>{m["rank"]}. {m["score"]:.3f}<br>'
            f'{html.escape(Path(m["path"]).name)}</figcaption></figure>' for m in res["matches"])
        blocks.append(f'<h2>query {html.escape(Path(res["query"]).name)}</h2><div class="row"><figure>'
                      f'<img src="{_thumb(res["query"])}" alt=""><figcaption>query</figcaption></figure>{cells}</div>')
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>msareid search</title><style>"
            "body{font-family:sans-serif}.row{display:flex;flex-wrap:wrap;gap:6px}figure{margin:0;text-align:center;"
            "font-size:11px}img{height:160px;border:1px solid #999}</style></head><body><h1>msareid search</h1>"
            + "".join(blocks) + "</body></html>")
    from msareid.fileio import write_text

    write_text(out, page)


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--format", choices=("onnx",), default="onnx")
    p.add_argument("--out", required=True, metavar="MODEL.onnx")
    p.add_argument("--opset", type=int, default=17)


def cmd_export(args: argparse.Namespace) -> int:
    from msareid.export import export_onnx

    path = export_onnx(args.checkpoint, args.out, args.opset)
    print(f"wrote {path}: input 'images' (N x 3 x H x W, ImageNet-normalised), outputs 'bnneck' and 'pooled'; "
          "N is dynamic")
    return 0
