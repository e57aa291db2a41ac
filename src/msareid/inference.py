"""Feature extraction with a trained network, and evaluation of a checkpoint on a dataset."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from msareid.config import Config, EvalConfig, config_from_dict
from msareid.data.base import TestSettings
from msareid.data.cache import ImageCache, default_cache_dir
from msareid.data.datasets import open_dataset
from msareid.data.records import Record
from msareid.data.transforms import test_transform
from msareid.errors import UserError
from msareid.eval.driver import FeatureTable, Rerank, evaluate_runs
from msareid.eval.protocols import EvalResult
from msareid.models import MSANet
from msareid.models.embedding import Embeddings
from msareid.systems import SYSTEMS
from msareid.systems.network import build_model
from msareid.training.checkpoint import load_checkpoint


@dataclass(frozen=True)
class Features:
    """Per-image features by name, one row an image: ``pooled`` (pre-BNNeck), ``bnneck``, and each
    feature head's of F (``EmbeddingNet.feature_names``)."""

    by_name: dict[str, np.ndarray]

    @property
    def pooled(self) -> np.ndarray:
        return self.by_name["pooled"]

    @property
    def bnneck(self) -> np.ndarray:
        return self.by_name["bnneck"]

    def tables(self) -> dict[str, np.ndarray]:
        """The features present, by name: ``pooled``, ``bnneck``, then each head's."""
        return dict(self.by_name)


def stems_of(model: MSANet, modalities: Sequence[str] | None, what: str = "images") -> np.ndarray | None:
    """The stem index of each image's modality ("rgb" | "ir") for a two-stream F, None for one
    stream; a two-stream F without modalities is refused."""
    if not model.embed.two_stream:
        return None
    if modalities is None:
        raise UserError(f"this model has a stem for each modality (model.two_stream): the modality of the {what} "
                        "(rgb or ir) is needed")
    bad = sorted({m for m in modalities if m not in ("rgb", "ir")})
    if bad:
        raise UserError(f"modality must be rgb or ir, got {bad[0]!r}")
    return np.array([model.stem_of(m) for m in modalities], dtype=np.int64)


@torch.no_grad()
def extract(model: MSANet, images: ImageCache | list[np.ndarray], height: int, width: int, batch_size: int = 64,
            flip: bool = False, device: str | torch.device = "cpu", progress: bool = False,
            modalities: Sequence[str] | None = None) -> Features:
    """Features of every image (uint8 H x W x 3) through F, batched; ``flip`` averages the mirror's.
    ``modalities`` ("rgb" | "ir", one an image) choose the stems of a two-stream F."""
    model.eval()
    stems = stems_of(model, modalities)
    tf = test_transform(height, width)
    names = model.embed.feature_names
    rows: dict[str, list[np.ndarray]] = {name: [] for name in names}
    n = len(images)
    bar = tqdm(range(0, n, batch_size), desc="extract", disable=not (progress and sys.stderr.isatty()), leave=False)
    for start in bar:
        batch = torch.stack([tf(np.asarray(images[i])) for i in range(start, min(n, start + batch_size))])
        batch = batch.to(device)
        stem = None if stems is None else torch.from_numpy(stems[start : start + batch.shape[0]]).to(device)
        out = model(batch, stem)
        values = {name: _feature(out, name).float() for name in names}
        if flip:
            mirrored = model(batch.flip(-1), stem)
            values = {name: (v + _feature(mirrored, name).float()) / 2 for name, v in values.items()}
        for name, v in values.items():
            rows[name].append(v.cpu().numpy())
    return Features({name: np.concatenate(r) for name, r in rows.items()})


def _feature(out: Embeddings, name: str) -> torch.Tensor:
    return out.extra[name] if name in out.extra else getattr(out, name)


def extract_records(model: MSANet, records: list[Record], config: Config, flip: bool = False,
                    device: str | torch.device = "cpu", progress: bool = False) -> dict[str, FeatureTable]:
    """Feature tables of ``records`` by name (pooled, BNNeck, and each feature head's), decoded
    through the image cache."""
    d = config.data
    modality = {r.path: r.modality.value for r in records}
    unique = list(modality)
    cache = ImageCache.build(unique, d.height, d.width, default_cache_dir(d.cache_dir), progress=progress,
                             desc="decode test")
    feats = extract(model, cache, d.height, d.width, config.eval.batch_size, flip, device, progress,
                    [modality[p] for p in unique])
    return {name: FeatureTable(unique, values) for name, values in feats.tables().items()}


def test_settings(config: Config) -> TestSettings:
    """The protocol choices of ``config.eval`` that a dataset reader needs."""
    return TestSettings.of(config.eval)


def evaluate_model(model: MSANet, config: Config, dataset: str, root: str | os.PathLike[str],
                   device: str | torch.device = "cpu", progress: bool = False) -> dict[str, EvalResult]:
    """Evaluate ``model`` on ``dataset`` at ``root`` with the protocol of ``config.eval`` and the
    dataset's ranking rules (``eval.metric`` chooses the similarity).

    Returns a result for each feature, the headline one (:func:`headline_feature`) first:
    ``{"bnneck": ..., "pooled": ...}``, or where a feature head is the test feature, e.g.
    ``{"part": ..., "bnneck": ..., "pooled": ...}``.
    RegDB uses ``config.data.trial``; each result names the protocol, the rules, the sampler and
    the direction it used.
    """
    e = config.eval
    reader = open_dataset(dataset, root, config.data.trial)
    settings = test_settings(config)
    runs = reader.test_runs(settings)
    rules = reader.rules.with_metric(e.metric)
    rerank = Rerank(e.k1, e.k2, e.lambda_value) if e.rerank else None
    images = list({r.path: r for run in runs for r in run.query + run.gallery}.values())
    tables = extract_records(model, images, config, e.flip, device, progress)
    first = headline_feature(model)
    order = [first, *(name for name in ("bnneck", "pooled", *tables) if name != first)]
    order = list(dict.fromkeys(order))
    results = {name: evaluate_runs(tables[name], runs, rules, reader.protocol_name(settings), rerank,
                                   trials=len(runs)) for name in order}
    for name, r in results.items():
        r.details.update({"feature": name, "flip": e.flip})
    return results


def headline_feature(model: MSANet) -> str:
    """The feature a model is judged by: the BNNeck feature, or the feature head a system made the
    test feature (e.g. the part-aggregated one, which its reference reports; BNNeck is reported beside)."""
    return model.embed.test_feature


def feature_title(name: str) -> str:
    """How results name a feature: F's own, or as the system whose head gives it names it."""
    titles = {"bnneck": "BNNeck feature", "pooled": "pooled feature",
              **{k: v for s in SYSTEMS.values() for k, v in s.feature_titles.items()}}
    return titles.get(name, f"{name} feature")


def evaluate_checkpoint(path: str | os.PathLike[str], protocol: Callable[[EvalConfig], EvalConfig],
                        dataset: str | None = None, root: str | None = None, device: str | torch.device = "cpu",
                        progress: bool = False) -> tuple[dict[str, Any], str]:
    """``msareid evaluate --checkpoint``: the model of ``path`` on its own dataset (or ``dataset`` at
    ``root``) under ``protocol(run's [eval])``. Returns the JSON object (with ``epoch``, the epochs
    the checkpoint was trained for) and the readable tables."""
    model, config, state = load_trained(path, device)
    root = root or config.data.root
    if not root:
        raise UserError(f"{path}: its config has no data.root; pass --root")
    config = dataclasses.replace(config, eval=protocol(config.eval))
    results = evaluate_model(model, config, dataset or config.data.name, root, device, progress)
    used = {"epoch": int(state["epoch"]), "eval": dataclasses.asdict(config.eval)}
    return {**results_json(results, str(path)), **used}, results_text(results)


def results_json(results: dict[str, EvalResult], checkpoint: str) -> dict[str, Any]:
    """The JSON object of ``msareid evaluate``: the headline feature's figures at the top level
    (``feature`` names it), every other feature's under its name."""
    first, *others = results
    results[first].require_valid_queries()
    return {**results[first].as_dict(per_run=False), **{n: results[n].as_dict(per_run=False) for n in others},
            "checkpoint": checkpoint}


def results_text(results: dict[str, EvalResult]) -> str:
    """The readable tables of ``msareid evaluate``, the headline feature's first."""
    first = next(iter(results))
    return "\n".join(f"{feature_title(n)}{' (headline)' if n == first else ''}:\n{r.table()}"
                     for n, r in results.items())


def load_trained(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> tuple[MSANet, Config, dict]:
    """A trained network (eval mode), its config and the checkpoint dict, from a checkpoint file."""
    state = load_checkpoint(path)
    config = config_from_dict(state["config"], source=f"{path} (config)")
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, pretrained="none"))
    model = build_model(config, int(state["num_classes"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise UserError(f"checkpoint {path} does not match its own config ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval(), config, state
