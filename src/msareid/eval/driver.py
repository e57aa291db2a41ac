"""From features + records + protocol to an :class:`EvalResult`.

A model's features are looked up by image path in a :class:`FeatureTable`, so the same extracted
features serve every trial of a protocol: the query once, each trial's gallery as a subset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from msareid.data.records import Record, arrays_of
from msareid.data.regdb import RegDB
from msareid.data.sysu import GALLERY_CAMERAS, SysuMM01
from msareid.data.sysu_official import RandPerm
from msareid.errors import UserError
from msareid.eval.metrics import RankingMetrics, evaluate_distance, evaluate_features, l2_normalize
from msareid.eval.protocols import SYSU_CAMERA_RULES, EvalResult, RegdbProtocol, SysuProtocol
from msareid.eval.rerank import k_reciprocal_rerank


@dataclass(frozen=True)
class Rerank:
    """k-reciprocal re-ranking parameters (the usual ones by default)."""

    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3

    @property
    def name(self) -> str:
        return f"k-reciprocal (k1 {self.k1}, k2 {self.k2}, lambda {self.lambda_value})"


def rank_and_score(q_feat: np.ndarray, g_feat: np.ndarray, q_pids: np.ndarray, q_cams: np.ndarray,
                   g_pids: np.ndarray, g_cams: np.ndarray, metric: str, cmc_mode: str,
                   camera_rules: Sequence[tuple[int, int]] = (), rerank: Rerank | None = None) -> RankingMetrics:
    """Metrics of one query/gallery pair, ranked by ``metric`` or by re-ranked distances."""
    if rerank is None:
        return evaluate_features(q_feat, g_feat, q_pids, q_cams, g_pids, g_cams, metric=metric, cmc_mode=cmc_mode,
                                 camera_rules=camera_rules)
    dist = k_reciprocal_rerank(l2_normalize(q_feat), l2_normalize(g_feat), rerank.k1, rerank.k2, rerank.lambda_value)
    return evaluate_distance(dist, q_pids, q_cams, g_pids, g_cams, cmc_mode=cmc_mode, camera_rules=camera_rules)


class FeatureTable:
    """Feature rows addressed by image path."""

    def __init__(self, paths: Sequence[str], features: np.ndarray) -> None:
        if len(paths) != len(features):
            raise ValueError(f"{len(paths)} paths but {len(features)} feature rows")
        self.features = np.asarray(features, dtype=np.float32)
        self._row = {p: i for i, p in enumerate(paths)}

    def rows(self, records: Sequence[Record]) -> np.ndarray:
        """Features of ``records`` in their order."""
        try:
            return self.features[[self._row[r.path] for r in records]]
        except KeyError as exc:
            raise UserError(f"no feature was extracted for image {exc.args[0]}") from None


def sysu_test_records(ds: SysuMM01, mode: str = "all", test_ids: list[int] | None = None) -> list[Record]:
    """Every image whose feature a SYSU-MM01 evaluation can need: the query and all gallery cameras."""
    pids = ds.test_ids(test_ids)
    return ds.query(test_ids) + ds.records(pids, GALLERY_CAMERAS[mode])


def evaluate_sysu(table: FeatureTable, ds: SysuMM01, protocol: SysuProtocol, metric: str = "cosine",
                  perm: RandPerm | None = None, test_ids: list[int] | None = None,
                  rerank: Rerank | None = None) -> EvalResult:
    """Every trial of a SYSU-MM01 protocol; the query is shared, the gallery redrawn per trial."""
    query = ds.query(test_ids)
    q_feat, (q_pids, q_cams) = table.rows(query), arrays_of(query)
    runs = []
    for trial in range(protocol.trials):
        gallery = ds.gallery(protocol.mode, protocol.shots, trial, protocol.sampler, perm, test_ids)
        g_pids, g_cams = arrays_of(gallery)
        runs.append(rank_and_score(q_feat, table.rows(gallery), q_pids, q_cams, g_pids, g_cams, metric, "sysu",
                                   SYSU_CAMERA_RULES, rerank))
    return EvalResult(protocol.name, tuple(runs), _details(metric, rerank, trials=protocol.trials))


def _details(metric: str, rerank: Rerank | None, **extra: object) -> dict:
    return {"metric": metric, **extra, **({"rerank": rerank.name} if rerank else {})}


def evaluate_regdb(table: FeatureTable, ds: RegDB, protocol: RegdbProtocol, metric: str = "cosine",
                   rerank: Rerank | None = None) -> EvalResult:
    """One RegDB trial in one direction (standard CMC, no camera rule)."""
    if ds.trial != protocol.trial:
        raise ValueError(f"dataset trial {ds.trial} differs from protocol trial {protocol.trial}")
    query, gallery = ds.query_gallery(protocol.direction)
    (q_pids, q_cams), (g_pids, g_cams) = arrays_of(query), arrays_of(gallery)
    run = rank_and_score(table.rows(query), table.rows(gallery), q_pids, q_cams, g_pids, g_cams, metric, "regdb",
                         (), rerank)
    return EvalResult(protocol.name, (run,), _details(metric, rerank))
