"""Pictures of a trained model: generated modalities (Fig. 5), t-SNE of features (Fig. 6) and
ranking lists with true and false matches marked."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from msareid.config import Config
from msareid.data.cache import load_image
from msareid.data.records import Modality, Record
from msareid.data.transforms import denormalize, test_transform
from msareid.eval.metrics import l2_normalize
from msareid.models import MSANet
from msareid.report.grid import image_grid, save_png
from msareid.report.plots import tsne_plot
from msareid.report.tsne import tsne


def _tensor(records: Sequence[Record], config: Config) -> torch.Tensor:
    tf = test_transform(config.data.height, config.data.width)
    return torch.stack([tf(load_image(r.path, config.data.height, config.data.width)) for r in records])


def _pil(batch: torch.Tensor) -> list[Image.Image]:
    arr = (denormalize(batch).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return [Image.fromarray(a) for a in arr]


def _pairs(rgb: Sequence[Record], ir: Sequence[Record], ids: int) -> tuple[list[Record], list[Record]]:
    """One RGB and one IR record for each of the first ``ids`` identities present in both."""
    first_ir = {}
    for r in ir:
        first_ir.setdefault(r.pid, r)
    chosen_rgb, chosen_ir, seen = [], [], set()
    for r in rgb:
        if r.pid in first_ir and r.pid not in seen:
            seen.add(r.pid)
            chosen_rgb.append(r)
            chosen_ir.append(first_ir[r.pid])
        if len(seen) == ids:
            break
    return chosen_rgb, chosen_ir


@torch.no_grad()
def style_grid(model: MSANet, rgb: Sequence[Record], ir: Sequence[Record], config: Config,
               path: str | os.PathLike[str], ids: int = 6) -> tuple[Path, str] | None:
    """Rows of RGB | R2I | IR | I2R for a few identities (the paper's Fig. 5) and the column names;
    None for a model without ISA."""
    if model.r2i is None and model.i2r is None:
        return None
    model.eval()
    r, i = _pairs(rgb, ir, ids)
    x_rgb, x_ir = _tensor(r, config), _tensor(i, config)
    generated = model.adapt(x_rgb, x_ir)
    columns = [_pil(x_rgb)]
    if "r2i" in generated:
        columns.append(_pil(generated["r2i"]))
    columns.append(_pil(x_ir))
    if "i2r" in generated:
        columns.append(_pil(generated["i2r"]))
    rows = [list(row) for row in zip(*columns)]
    names = ["RGB"] + (["R2I"] if "r2i" in generated else []) + ["IR"] + (["I2R"] if "i2r" in generated else [])
    return save_png(image_grid(rows, [f"id {rec.pid}" for rec in r], label_width=60), path), " | ".join(names)


@torch.no_grad()
def tsne_figure(model: MSANet, records: Sequence[Record], config: Config, path: str | os.PathLike[str],
                title: str, ids: int = 8, per_modality: int = 6) -> Path:
    """t-SNE of BNNeck features of a few test identities in every modality the model has (Fig. 6)."""
    model.eval()
    chosen: list[Record] = []
    for pid in sorted({r.pid for r in records})[:ids]:
        for modality in (Modality.RGB, Modality.IR):
            chosen += [r for r in records if r.pid == pid and r.modality is modality][:per_modality]
    rgb = [r for r in chosen if r.modality is Modality.RGB]
    ir = [r for r in chosen if r.modality is Modality.IR]
    x_rgb, x_ir = _tensor(rgb, config), _tensor(ir, config)
    batches = [(x_rgb, rgb, "RGB"), (x_ir, ir, "IR")]
    generated = model.adapt(x_rgb, x_ir)
    if "r2i" in generated:
        batches.append((generated["r2i"], rgb, "R2I"))
    if "i2r" in generated:
        batches.append((generated["i2r"], ir, "I2R"))
    feats, pids, modalities = [], [], []
    for x, recs, name in batches:
        feats.append(model(x, model.stem_of(name.lower())).bnneck.numpy())
        pids += [r.pid for r in recs]
        modalities += [name] * len(recs)
    points = tsne(l2_normalize(np.concatenate(feats)), perplexity=15, seed=0)
    return tsne_plot(points, pids, modalities, path, title)


def _bordered(path: str, config: Config, colour: str | None) -> Image.Image:
    img = Image.fromarray(load_image(path, config.data.height, config.data.width)).resize((64, 128))
    return ImageOps.expand(img, border=4, fill=colour) if colour else ImageOps.expand(img, border=4, fill="white")


def ranking_figure(query_feats: np.ndarray, gallery_feats: np.ndarray, query: Sequence[Record],
                   gallery: Sequence[Record], config: Config, path: str | os.PathLike[str], queries: int = 4,
                   topk: int = 10) -> Path:
    """For a few queries (one per identity): the query, then its top-k gallery images, green for a
    true match and red for a false one (cosine similarity)."""
    q, g = l2_normalize(query_feats), l2_normalize(gallery_feats)
    picks, seen = [], set()
    for idx, r in enumerate(query):
        if r.pid not in seen and any(x.pid == r.pid for x in gallery):
            seen.add(r.pid)
            picks.append(idx)
        if len(picks) == queries:
            break
    rows, labels = [], []
    for idx in picks:
        order = np.argsort(-(g @ q[idx]), kind="stable")[:topk]
        row = [_bordered(query[idx].path, config, None)]
        row += [_bordered(gallery[j].path, config, "#1a9850" if gallery[j].pid == query[idx].pid else "#d73027")
                for j in order]
        rows.append(row)
        labels.append(f"query id {query[idx].pid}")
    return save_png(image_grid(rows, labels, cell=(72, 136), label_width=90), path)
