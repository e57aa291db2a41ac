"""Reading precomputed features: our ``.npz`` form and the SYSU-MM01 authors' ``.mat`` form."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Protocol

import numpy as np

from msareid.data.base import TestSettings
from msareid.data.sysu import GALLERY_CAMERAS, IR_CAMERAS, SysuMM01
from msareid.data.sysu_official import RandPerm, load_mat_variable
from msareid.errors import UserError
from msareid.eval.driver import Rerank, rank_and_score
from msareid.eval.gallery import mmap_member
from msareid.eval.metrics import RankingMetrics, evaluate_features
from msareid.eval.protocols import EvalResult
from msareid.rules import RankingRules


class EvalConfigLike(Protocol):
    """What the evaluation of feature files reads of ``[eval]`` (an :class:`~msareid.config.EvalConfig`)."""

    mode: str
    shots: int
    trials: int
    perm: str
    metric: str
    rerank: bool
    k1: int
    k2: int
    lambda_value: float


NPZ_KEYS = ("query_feat", "gallery_feat", "query_pid", "gallery_pid", "query_cam", "gallery_cam")


def load_feature_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read and validate an npz of query/gallery features, ids and cameras."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"feature file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            names = list(data.files)
        # uncompressed members are memory-mapped (no CRC pass, no copy: the features are read once,
        # when converted for ranking); compressed ones are read whole
        arrays = {k: mmap_member(path, k) for k in names}
    except (OSError, ValueError, EOFError, KeyError, IndexError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path} is not a readable .npz file ({exc.__class__.__name__}: {exc})") from exc
    for key in NPZ_KEYS:
        if key not in arrays:
            raise UserError(f"{path} lacks array '{key}' (expected {', '.join(NPZ_KEYS)})")
    for side in ("query", "gallery"):
        feat = arrays[f"{side}_feat"]
        if feat.ndim != 2 or not (np.issubdtype(feat.dtype, np.floating) or np.issubdtype(feat.dtype, np.integer)):
            raise UserError(f"{path}: '{side}_feat' must be a 2-D array of real numbers (N x D), got shape "
                            f"{feat.shape} of {feat.dtype}")
        if feat.shape[0] == 0 or feat.shape[1] == 0:
            raise UserError(f"{path}: '{side}_feat' is empty (shape {feat.shape}): expected at least one row")
        if not np.isfinite(feat).all():
            raise UserError(f"{path}: '{side}_feat' holds NaN or infinite values")
        for key in (f"{side}_pid", f"{side}_cam"):
            arr = arrays[key]
            if arr.shape != (feat.shape[0],) or not np.issubdtype(arr.dtype, np.integer):
                raise UserError(f"{path}: '{key}' must be {feat.shape[0]} integers (one per {side} row), "
                                f"got shape {arr.shape} of {arr.dtype}")
    if arrays["query_feat"].shape[1] != arrays["gallery_feat"].shape[1]:
        raise UserError(f"{path}: query features have {arrays['query_feat'].shape[1]} dimensions but "
                        f"gallery features {arrays['gallery_feat'].shape[1]}")
    return arrays


def evaluate_npz(arrays: dict[str, np.ndarray], rules: RankingRules, rerank: Rerank | None = None,
                 protocol: str = "") -> EvalResult:
    """Evaluate the one query/gallery pair of an npz under a dataset's ``rules`` (as they are:
    no transposition, no trials); the result is named ``<protocol>/features`` (default: the rules' name)."""
    run = rank_and_score(arrays["query_feat"], arrays["gallery_feat"], arrays["query_pid"], arrays["query_cam"],
                         arrays["gallery_pid"], arrays["gallery_cam"], rules, rerank)
    details = {"metric": rules.metric, "rules": rules.name, **({"rerank": rerank.name} if rerank else {})}
    return EvalResult(f"{protocol or rules.name}/features", (run,), details)


class OfficialFeatures:
    """Features in the authors' form: ``NAME_cam<c>.mat`` with a cell ``feature{id}(i, :)``."""

    def __init__(self, folder: str | os.PathLike[str], name: str) -> None:
        self.folder, self.name = Path(folder), name
        self._cams: dict[int, np.ndarray] = {}

    def person(self, camera: int, pid: int) -> np.ndarray:
        """Feature rows of person ``pid`` (1-based) in ``camera``; 0 rows when absent."""
        if camera not in self._cams:
            path = self.folder / f"{self.name}_cam{camera}.mat"
            self._cams[camera] = np.asarray(load_mat_variable(path, "feature"), dtype=object).reshape(-1)
        cells = self._cams[camera]
        if pid > cells.size:
            return np.zeros((0, 0), dtype=np.float32)
        rows = np.asarray(cells[pid - 1], dtype=np.float32)
        if rows.size == 0:
            return np.zeros((0, 0), dtype=np.float32)
        if rows.ndim != 2:
            raise UserError(f"{self.name}_cam{camera}.mat: feature{{{pid}}} should be images x dims, got {rows.shape}")
        if not np.isfinite(rows).all():
            raise UserError(f"{self.name}_cam{camera}.mat: feature{{{pid}}} holds NaN or infinite values")
        return rows


def _collect(features: OfficialFeatures, test_ids: list[int], cameras: tuple[int, ...], what: str,
             pick=lambda cam, pid, rows: rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack the rows of every (id, camera), id by id, camera by camera, through ``pick``."""
    parts, pids, cams = [], [], []
    for pid in test_ids:
        for cam in cameras:
            rows = features.person(cam, pid)
            if len(rows):
                rows = pick(cam, pid, rows)
                parts.append(rows)
                pids += [pid] * len(rows)
                cams += [cam] * len(rows)
    if not parts:
        raise UserError(f"no {what} features found for the test ids")
    dims = {p.shape[1] for p in parts}
    if len(dims) > 1:
        raise UserError(f"{what} features have different dimensions: {sorted(dims)}")
    return np.concatenate(parts), np.asarray(pids), np.asarray(cams)


def evaluate_official(features: OfficialFeatures, perm: RandPerm, test_ids: list[int], protocol: TestSettings,
                      metric: str = "cosine") -> EvalResult:
    """The authors' 10-run SYSU-MM01 evaluation on their feature files and permutations."""
    q_feat, q_pids, q_cams = _collect(features, test_ids, IR_CAMERAS, "query")
    runs: list[RankingMetrics] = []
    for run in range(protocol.trials):
        def pick(cam: int, pid: int, rows: np.ndarray, run: int = run) -> np.ndarray:
            return rows[perm.indices(cam, pid, run, protocol.shots, len(rows))]

        g_feat, g_pids, g_cams = _collect(features, test_ids, GALLERY_CAMERAS[protocol.mode], "gallery", pick)
        if g_feat.shape[1] != q_feat.shape[1]:
            raise UserError(f"query features have {q_feat.shape[1]} dimensions, gallery {g_feat.shape[1]}")
        runs.append(evaluate_features(q_feat, g_feat, q_pids, q_cams, g_pids, g_cams,
                                      SysuMM01.rules.with_metric(metric)))
    shot = "single-shot" if protocol.shots == 1 else "multi-shot"
    return EvalResult(f"sysu-official/{protocol.mode}/{shot}", tuple(runs), {"metric": metric})


def evaluate_features_file(path: str | os.PathLike[str], dataset: str, protocol: EvalConfigLike) -> EvalResult:
    """``msareid evaluate --features``: the npz's pair under the ranking rules of ``dataset``, ranked
    by ``protocol.metric`` and optionally re-ranked (``protocol.rerank``, ``k1``, ``k2``, ``lambda_value``)."""
    from msareid.data.datasets import rules_of

    rerank = Rerank(protocol.k1, protocol.k2, protocol.lambda_value) if protocol.rerank else None
    rules = rules_of(dataset).with_metric(protocol.metric)
    return evaluate_npz(load_feature_npz(path), rules, rerank, dataset).require_valid_queries()


def evaluate_official_files(folder: str | os.PathLike[str], name: str, test_ids: str | os.PathLike[str],
                            protocol: EvalConfigLike) -> EvalResult:
    """``msareid evaluate --official-sysu``: the authors' feature files, permutations and test ids."""
    from msareid.data.sysu_official import load_test_ids

    if not 1 <= protocol.trials <= 10:
        raise UserError(f"--trials must be 1..10, got {protocol.trials}")
    settings = TestSettings(protocol.mode, protocol.shots, protocol.trials, "official", protocol.perm)
    result = evaluate_official(OfficialFeatures(folder, name), RandPerm.load(protocol.perm), load_test_ids(test_ids),
                               settings, protocol.metric)
    return result.require_valid_queries()
