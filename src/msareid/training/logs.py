"""The metrics log: JSON lines (always, rank 0 only) and optionally TensorBoard."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from msareid.errors import UserError


class MetricsLog:
    """Appends one JSON object a line to ``metrics.jsonl``; mirrors numbers to TensorBoard if asked.

    A process that is not rank 0 gets ``enabled=False`` and writes nothing.
    """

    def __init__(self, folder: Path, enabled: bool = True, tensorboard: bool = False) -> None:
        self.path = folder / "metrics.jsonl"
        self.enabled = enabled
        self._tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise UserError("train.tensorboard = true needs the tensorboard package: "
                                "pip install tensorboard") from None
            self._tb = SummaryWriter(str(folder / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"time": round(time.time(), 3), **record}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self._tb is not None and record.get("event") == "step":
            step = (record["epoch"] - 1) * record["steps"] + record["step"]
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("time", "epoch", "step", "steps"):
                    self._tb.add_scalar(f"train/{key}", value, step)
            for key, value in record.get("losses", {}).items():  # every term and part, by its name
                self._tb.add_scalar(f"loss/{key.replace('.', '/')}", value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(folder: Path) -> list[dict[str, Any]]:
    """Every record of ``folder/metrics.jsonl`` (an interrupted last line is skipped)."""
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def best_evaluation(folder: Path, protocol: str, epochs: int) -> dict[str, Any] | None:
    """The epoch with the highest Rank-1 among the evaluations logged during training (``eval.every``)
    under ``protocol``, up to ``epochs``, as the reference selects its model (the first such epoch
    on a tie); None without any. Selected on the test set, so optimistic: a run's headline figures
    stay its last epoch's."""
    evals: dict[int, dict[str, Any]] = {}
    for r in read_metrics(folder):
        if r.get("event") == "eval" and r.get("protocol") == protocol and 0 < int(r.get("epoch", 0)) <= epochs:
            evals[int(r["epoch"])] = r  # a line written again after a resume replaces the earlier one
    if not evals:
        return None
    epoch = max(sorted(evals), key=lambda e: evals[e]["rank1"])
    return {"epoch": epoch, **{k: float(evals[epoch][k]) for k in ("rank1", "rank10", "mAP", "mINP")}}
