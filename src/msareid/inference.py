"""Feature extraction with a trained network, and evaluation of a checkpoint on a dataset."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from msareid.config import Config
from msareid.data.cache import ImageCache, default_cache_dir
from msareid.data.manifest import read_manifest
from msareid.data.records import Record, arrays_of
from msareid.data.regdb import RegDB
from msareid.data.sysu import SysuMM01
from msareid.data.sysu_official import RandPerm
from msareid.data.transforms import test_transform
from msareid.errors import UserError
from msareid.eval.driver import (
    FeatureTable,
    Rerank,
    evaluate_regdb,
    evaluate_sysu,
    rank_and_score,
    sysu_test_records,
)
from msareid.eval.protocols import EvalResult, RegdbProtocol, SysuProtocol
from msareid.models import MSANet


@dataclass(frozen=True)
class Features:
    """Per-image features: pooled (pre-BNNeck) and BNNeck, one row an image."""

    pooled: np.ndarray
    bnneck: np.ndarray


@torch.no_grad()
def extract(model: MSANet, images: ImageCache | list[np.ndarray], height: int, width: int, batch_size: int = 64,
            flip: bool = False, device: str | torch.device = "cpu", progress: bool = False) -> Features:
    """Features of every image (uint8 H x W x 3) through F, batched; ``flip`` averages the mirror's."""
    model.eval()
    tf = test_transform(height, width)
    pooled, bnneck = [], []
    n = len(images)
    bar = tqdm(range(0, n, batch_size), desc="extract", disable=not (progress and sys.stderr.isatty()), leave=False)
    for start in bar:
        batch = torch.stack([tf(np.asarray(images[i])) for i in range(start, min(n, start + batch_size))])
        batch = batch.to(device)
        out = model(batch)
        p, b = out.pooled.float(), out.bnneck.float()
        if flip:
            mirrored = model(batch.flip(-1))
            p, b = (p + mirrored.pooled.float()) / 2, (b + mirrored.bnneck.float()) / 2
        pooled.append(p.cpu().numpy())
        bnneck.append(b.cpu().numpy())
    return Features(np.concatenate(pooled), np.concatenate(bnneck))


def extract_records(model: MSANet, records: list[Record], config: Config, flip: bool = False,
                    device: str | torch.device = "cpu", progress: bool = False) -> tuple[FeatureTable, FeatureTable]:
    """Feature tables (pooled, BNNeck) of ``records``, decoded through the image cache."""
    d = config.data
    unique = list(dict.fromkeys(r.path for r in records))
    cache = ImageCache.build(unique, d.height, d.width, default_cache_dir(d.cache_dir), progress=progress,
                             desc="decode test")
    feats = extract(model, cache, d.height, d.width, config.eval.batch_size, flip, device, progress)
    return FeatureTable(unique, feats.pooled), FeatureTable(unique, feats.bnneck)


DATASETS = ("sysu", "regdb", "manifest", "synthetic")


def evaluate_model(model: MSANet, config: Config, dataset: str, root: str | os.PathLike[str],
                   device: str | torch.device = "cpu", progress: bool = False) -> dict[str, EvalResult]:
    """Evaluate ``model`` with the protocol of ``config.eval`` on ``dataset`` at ``root``.

    Returns ``{"bnneck": result, "pooled": result}``; the BNNeck feature is the headline one.
    ``synthetic`` is a synthetic set in the SYSU-MM01 layout; RegDB uses ``config.data.trial``.
    """
    e = config.eval
    flip = e.flip
    rerank = Rerank(e.k1, e.k2, e.lambda_value) if e.rerank else None
    if dataset in ("sysu", "synthetic"):
        ds = SysuMM01(root)
        if e.sampler == "official" and not e.perm:
            raise UserError("eval.sampler = official needs eval.perm = path/to/rand_perm_cam.mat (--perm)")
        perm = RandPerm.load(e.perm) if e.sampler == "official" else None
        protocol = SysuProtocol(e.mode, e.shots, e.trials, e.sampler)
        tables = extract_records(model, sysu_test_records(ds, e.mode), config, flip, device, progress)
        results = {name: evaluate_sysu(t, ds, protocol, e.metric, perm, rerank=rerank)
                   for name, t in zip(("pooled", "bnneck"), tables)}
    elif dataset == "regdb":
        ds = RegDB(root, config.data.trial)
        query, gallery = ds.query_gallery(e.direction)
        tables = extract_records(model, query + gallery, config, flip, device, progress)
        protocol = RegdbProtocol(config.data.trial, e.direction)
        results = {name: evaluate_regdb(t, ds, protocol, e.metric, rerank)
                   for name, t in zip(("pooled", "bnneck"), tables)}
    elif dataset == "manifest":
        splits = read_manifest(root)
        if not splits["query"] or not splits["gallery"]:
            raise UserError(f"{root} needs rows with split query and split gallery to be evaluated")
        tables = extract_records(model, splits["query"] + splits["gallery"], config, flip, device, progress)
        results = {}
        for name, t in zip(("pooled", "bnneck"), tables):
            q, g = splits["query"], splits["gallery"]
            run = rank_and_score(t.rows(q), t.rows(g), *arrays_of(q), *arrays_of(g), e.metric, "regdb", (), rerank)
            details = {"metric": e.metric, **({"rerank": rerank.name} if rerank else {})}
            results[name] = EvalResult(f"manifest/{Path(root).name}", (run,), details)
    else:
        raise UserError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")
    for name, r in results.items():
        r.details.update({"feature": name, "flip": flip})
    return results
