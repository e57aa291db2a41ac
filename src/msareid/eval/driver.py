"""From features + test runs + ranking rules to an :class:`EvalResult`.

A model's features are looked up by image path in a :class:`FeatureTable`, so the same extracted
features serve every run of a protocol: the query once, each trial's gallery as a subset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from msareid.data.base import TestRun
from msareid.data.records import Record, arrays_of
from msareid.errors import UserError
from msareid.eval.metrics import RankingMetrics, evaluate_distance, evaluate_features, l2_normalize
from msareid.eval.protocols import EvalResult
from msareid.eval.rerank import k_reciprocal_rerank
from msareid.rules import RankingRules


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
                   g_pids: np.ndarray, g_cams: np.ndarray, rules: RankingRules,
                   rerank: Rerank | None = None) -> RankingMetrics:
    """Metrics of one query/gallery pair under ``rules``, ranked by ``rules.metric`` or by
    re-ranked distances."""
    if rerank is None:
        return evaluate_features(q_feat, g_feat, q_pids, q_cams, g_pids, g_cams, rules)
    dist = k_reciprocal_rerank(l2_normalize(q_feat), l2_normalize(g_feat), rerank.k1, rerank.k2, rerank.lambda_value)
    return evaluate_distance(dist, q_pids, q_cams, g_pids, g_cams, rules)


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


def evaluate_runs(table: FeatureTable, runs: Sequence[TestRun], rules: RankingRules, protocol: str,
                  rerank: Rerank | None = None, **details: Any) -> EvalResult:
    """Every run of a protocol scored under ``rules``; the result names the protocol, the rules,
    ``details`` and what the runs' own details share (sampler, direction, transposed, ...)."""
    results = []
    for run in runs:
        query, gallery = run.scored()
        results.append(rank_and_score(table.rows(query), table.rows(gallery), *arrays_of(query), *arrays_of(gallery),
                                      rules, rerank))
    shared = {k: v for k, v in (runs[0].details if runs else {}).items()
              if k != "trial" and all(run.details.get(k) == v for run in runs)}
    info: dict[str, Any] = {"metric": rules.metric, **details, **shared, "rules": rules.name}
    if rerank:
        info["rerank"] = rerank.name
    return EvalResult(protocol, tuple(results), info)
