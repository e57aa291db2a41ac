"""The result of an evaluation over the runs (trials) of a protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from msareid.errors import UserError
from msareid.eval.metrics import RankingMetrics

_KEYS = ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")


@dataclass(frozen=True)
class EvalResult:
    """Per-trial (or per-run) metrics of one protocol, with their mean and standard deviation."""

    protocol: str
    runs: tuple[RankingMetrics, ...]
    details: dict[str, Any] = field(default_factory=dict)  # metric, feature, sampler, ...

    def require_valid_queries(self) -> EvalResult:
        """``self``, unless no query of any run has a true match: then no figure at all, not zeros."""
        if all(run.valid_queries == 0 for run in self.runs):
            raise UserError(f"{self.protocol}: no query has a true match in its gallery (query and gallery share "
                            "no identity, or the rules remove every match); check the ids and cameras")
        return self

    def mean(self) -> dict[str, Any]:
        """Mean over runs (plain mean), in the JSON form of :meth:`RankingMetrics.as_dict`."""
        dicts = [r.as_dict() for r in self.runs]
        out: dict[str, Any] = {
            "queries": int(np.mean([d["queries"] for d in dicts])),
            "valid_queries": int(np.mean([d["valid_queries"] for d in dicts])),
            "cmc": np.mean([d["cmc"] for d in dicts], axis=0).tolist(),
        }
        out.update({k: float(np.mean([d[k] for d in dicts])) for k in _KEYS if k in dicts[0]})
        return out

    def std(self) -> dict[str, float]:
        """Population standard deviation over runs of the headline figures."""
        dicts = [r.as_dict() for r in self.runs]
        return {k: float(np.std([d[k] for d in dicts])) for k in _KEYS if k in dicts[0]}

    def as_dict(self, per_run: bool = True) -> dict[str, Any]:
        """The JSON object: protocol, means, std, number of runs and optionally each run."""
        out: dict[str, Any] = {"protocol": self.protocol, **self.mean(), "std": self.std(),
                               "runs": len(self.runs), **self.details}
        if per_run:
            out["per_run"] = [r.as_dict() for r in self.runs]
        return out

    def table(self) -> str:
        """A readable table in percent: mean (and std when there are several runs)."""
        mean, std = self.mean(), self.std()
        extra = ", ".join(f"{k} {v}" for k, v in self.details.items())
        lines = [f"protocol: {self.protocol} ({len(self.runs)} run{'s' * (len(self.runs) > 1)}"
                 + (f"; {extra}" if extra else "") + ")",
                 f"queries: {mean['queries']} ({mean['valid_queries']} with a true match)",
                 "        " + "".join(f"{k:>8}" for k in _KEYS),
                 "mean    " + "".join(f"{100 * mean[k]:8.2f}" for k in _KEYS)]
        if len(self.runs) > 1:
            lines.append("std     " + "".join(f"{100 * std[k]:8.2f}" for k in _KEYS))
        return "\n".join(lines)
