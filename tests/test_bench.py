"""The prepared GPU check runs end to end: its CPU dry run at toy size."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_writes_its_figures(tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--dry-run", "--skip-tests", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["dry_run"] and [(r["model"], r["amp"]) for r in report["training"]] == [("B", False),
                                                                                          ("MSA", False)]
    assert all(r["images_per_s"] > 0 for r in report["training"])
    assert report["extraction"]["images_per_s"] > 0 and 0 <= report["evaluate"]["mAP"] <= 1
    assert "| MSA | off |" in (tmp_path / "gpu_check.md").read_text()
    scale = report["scale"]  # no GPU: one local run at a time, one rank
    assert scale["ablate"]["runs"] == 1 and scale["ablate"]["gpus_seen"] == ["-"]
    assert scale["torchrun"]["world_size"] == 1 and scale["torchrun"]["images_per_s"] > 0
