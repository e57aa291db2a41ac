"""Evaluation protocols (frozen dataclasses) and the result of an evaluation over trials."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from msareid.eval.metrics import RankingMetrics

SYSU_MODES = ("all", "indoor")
SYSU_SAMPLERS = ("agw", "official")
REGDB_DIRECTIONS = ("visible-to-thermal", "thermal-to-visible")
SYSU_CAMERA_RULES = ((3, 2),)  # a cam3 query never sees cam2 images: same location


@dataclass(frozen=True)
class SysuProtocol:
    """SYSU-MM01: search mode, single (1) or multi (10) shot, trials, gallery sampler."""

    mode: str = "all"
    shots: int = 1
    trials: int = 10
    sampler: str = "agw"

    def __post_init__(self) -> None:
        if self.mode not in SYSU_MODES:
            raise ValueError(f"mode must be one of {SYSU_MODES}, got {self.mode!r}")
        if self.shots not in (1, 10):
            raise ValueError(f"shots must be 1 or 10, got {self.shots}")
        if not 1 <= self.trials <= 10:
            raise ValueError(f"trials must be 1..10, got {self.trials}")
        if self.sampler not in SYSU_SAMPLERS:
            raise ValueError(f"sampler must be one of {SYSU_SAMPLERS}, got {self.sampler!r}")

    @property
    def name(self) -> str:
        shot = "single-shot" if self.shots == 1 else "multi-shot"
        return f"sysu/{self.mode}/{shot}/{self.sampler}"


@dataclass(frozen=True)
class RegdbProtocol:
    """RegDB: the trial (1..10) of the model and the search direction."""

    trial: int = 1
    direction: str = "visible-to-thermal"

    def __post_init__(self) -> None:
        if not 1 <= self.trial <= 10:
            raise ValueError(f"trial must be 1..10, got {self.trial}")
        if self.direction not in REGDB_DIRECTIONS:
            raise ValueError(f"direction must be one of {REGDB_DIRECTIONS}, got {self.direction!r}")

    @property
    def name(self) -> str:
        return f"regdb/trial{self.trial}/{self.direction}"


_KEYS = ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")


@dataclass(frozen=True)
class EvalResult:
    """Per-trial (or per-run) metrics of one protocol, with their mean and standard deviation."""

    protocol: str
    runs: tuple[RankingMetrics, ...]
    details: dict[str, Any] = field(default_factory=dict)  # metric, feature, sampler, ...

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
