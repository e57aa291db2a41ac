"""What ``msareid extract`` and ``msareid search`` do, as library functions: features of many
images into a feature file (through a memory map on disk, not RAM), top-k search of a gallery
(exact or faiss) and the search page with thumbnails."""

from __future__ import annotations

import base64
import html
import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from msareid.errors import UserError, warn
from msareid.fileio import display_path, file_url, remove_stale_temporaries, reserve, write_text

INDEXES = ("exact", "faiss")


@dataclass(frozen=True)
class Extracted:
    """A written feature file: its path, the number of images and the feature dimension."""

    path: Path
    images: int
    dim: int


def extract_to_file(checkpoint: str | os.PathLike[str], images: str | os.PathLike[str], out: str | os.PathLike[str],
                    modality: str | None = None, flip: bool = False, batch_size: int = 64, device: str = "auto",
                    step: int = 4096) -> Extracted:
    """Features of every image of a folder (searched recursively; ids and cameras unknown, -1) or
    of a manifest (ids, cameras and modalities from its rows) into the feature file ``out``. A
    folder's images are of ``modality`` (rgb | ir); a model with a stem for each modality needs it
    given (refused otherwise), any other takes rgb.

    ``step`` images are decoded at a time; the features go to a scratch memory map beside ``out``
    (disk space checked and reserved first), then into the file, written atomically.
    """
    from tqdm import tqdm

    from msareid.data.manifest import read_manifest
    from msareid.eval.gallery import save_features
    from msareid.extractor import FeatureExtractor, list_images

    source = Path(images)
    if source.is_file():
        records = [r for split in read_manifest(source).values() for r in split]
        paths = [r.path for r in records]
        pid, cam = [r.pid for r in records], [r.camera for r in records]
        modalities = [r.modality.value for r in records]
    elif source.is_dir():
        paths = list_images(source)
        modalities = []  # set below, once the model says whether it needs it
    else:
        raise UserError(f"--images {source} is neither a folder nor a manifest file")
    fx = FeatureExtractor(checkpoint, device, batch_size, flip)
    if source.is_dir():
        if modality is None and fx.model.embed.two_stream:
            raise UserError(f"{checkpoint} has a stem for each modality: say which the images of {source} are "
                            "with --modality rgb or --modality ir (or give a manifest, which names each image's)")
        pid, cam, modalities = [-1] * len(paths), [-1] * len(paths), [modality or "rgb"] * len(paths)
    out_path = Path(out)
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
            feats[start : start + step] = fx(paths[start : start + step], modalities[start : start + step])
        written = save_features(out_path, feats, paths, np.asarray(pid), np.asarray(cam), modalities, fx.model_id)
        del feats
    finally:
        scratch.unlink(missing_ok=True)
    return Extracted(written, len(paths), fx.dim)


def faiss_top_k(query: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and inner-product scores of the ``k`` best gallery rows through a faiss flat index."""
    try:
        import faiss
    except ImportError:
        raise UserError("--index faiss needs the faiss package: pip install faiss-cpu (or use --index exact)") from None
    index = faiss.IndexFlatIP(gallery.shape[1])
    for start in range(0, gallery.shape[0], 65536):
        index.add(np.ascontiguousarray(gallery[start : start + 65536], dtype=np.float32))
    scores, ids = index.search(np.ascontiguousarray(query, dtype=np.float32), k)
    return ids, scores


def search_gallery(checkpoint: str | os.PathLike[str], gallery_file: str | os.PathLike[str], queries: list[str],
                   topk: int = 10, index: str = "exact", flip: bool = False, device: str = "auto",
                   query_modality: str | None = None) -> dict[str, Any]:
    """The ``topk`` best matches of each query image in a feature file, by cosine similarity.
    ``query_modality`` (rgb | ir) is needed by a model with a stem for each modality.

    Returns ``{"gallery", "size", "results": [{"query", "matches": [{rank, index, score, path,
    pid, camera}]}]}``. A gallery of another dimension is refused; one extracted by other weights
    gives a warning.
    """
    from msareid.eval.gallery import FeatureFile, top_k
    from msareid.extractor import FeatureExtractor

    if index not in INDEXES:
        raise UserError(f"index must be one of {', '.join(INDEXES)}, got {index!r}")
    gallery = FeatureFile(gallery_file)
    fx = FeatureExtractor(checkpoint, device, flip=flip)
    if fx.dim != gallery.dim:
        raise UserError(f"{gallery_file} holds {gallery.dim}-d features but {checkpoint} gives {fx.dim}-d: "
                        "extract the gallery with the same model")
    if gallery.model_id and gallery.model_id != fx.model_id:
        warn(f"{gallery_file} was extracted by another model ({gallery.model_id}) than {checkpoint} "
             f"({fx.model_id}): scores compare features of two models")
    for q in queries:
        if not Path(q).is_file():
            raise UserError(f"query image {q} does not exist")
    if fx.model.embed.two_stream and query_modality is None:
        raise UserError(f"{checkpoint} has a stem for each modality: say which the queries are with "
                        "--query-modality rgb|ir")
    ids, scores = (faiss_top_k if index == "faiss" else top_k)(fx(queries, query_modality), gallery.feat, topk)
    results = [{"query": q, "matches": [
        {"rank": r + 1, "index": int(i), "score": float(s), "path": str(gallery.paths[i]),
         "pid": int(gallery.pid[i]), "camera": int(gallery.cam[i])} for r, (i, s) in enumerate(zip(row, srow))]}
        for q, row, srow in zip(queries, ids, scores)]
    return {"gallery": str(gallery_file), "size": int(gallery.feat.shape[0]), "results": results}


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


def _linked_thumb(path: str) -> str:
    title = html.escape(display_path(path), quote=True)
    return f'<a href="{html.escape(file_url(path), quote=True)}" title="{title}"><img src="{_thumb(path)}" alt=""></a>'


def write_search_page(results: list[dict[str, Any]], out: str | os.PathLike[str]) -> Path:
    """One HTML page (thumbnails embedded) of the ``results`` of :func:`search_gallery`. Each
    thumbnail links its file; a name that is not valid UTF-8 is shown with ``\\xNN`` escapes and
    linked by its exact bytes."""
    blocks = []
    for res in results:
        cells = "".join(
            f'<figure>{_linked_thumb(m["path"])}<figcaption>{m["rank"]}. {m["score"]:.3f}<br>'
            f'{html.escape(display_path(Path(m["path"]).name))}</figcaption></figure>' for m in res["matches"])
        blocks.append(f'<h2>query {html.escape(display_path(Path(res["query"]).name))}</h2><div class="row">'
                      f'<figure>{_linked_thumb(res["query"])}<figcaption>query</figcaption></figure>{cells}</div>')
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>msareid search</title><style>"
            "body{font-family:sans-serif}.row{display:flex;flex-wrap:wrap;gap:6px}figure{margin:0;text-align:center;"
            "font-size:11px}img{height:160px;border:1px solid #999}</style></head><body><h1>msareid search</h1>"
            + "".join(blocks) + "</body></html>")
    return write_text(out, page)
