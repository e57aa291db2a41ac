"""The import rules of the package (DESIGN.md "Layers"), read from the source: who may import whom."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "msareid"


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (lazy imports inside functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _modules(under: str = "") -> list[Path]:
    return sorted((PACKAGE / under).rglob("*.py"))


def test_only_the_command_line_imports_the_training_engine() -> None:
    importers = [p.relative_to(PACKAGE).as_posix() for p in _modules()
                 if any(m == "msareid.engine" or m.startswith("msareid.engine.") for m in _imports(p))]
    assert importers and all(p == "cli.py" or p.startswith("commands/") for p in importers), importers


@pytest.mark.parametrize(("package", "forbidden"), [("data", "msareid.models"), ("models", "msareid.data")])
def test_data_and_models_do_not_import_each_other(package: str, forbidden: str) -> None:
    offenders = {p.name: sorted(m for m in _imports(p) if m == forbidden or m.startswith(forbidden + "."))
                 for p in _modules(package)}
    assert not {k: v for k, v in offenders.items() if v}


def test_ranking_metrics_import_numpy_and_the_rules_only() -> None:
    for name in ("metrics.py", "rules.py", "rerank.py"):
        imported = {m for m in _imports(PACKAGE / "eval" / name) if m != "__future__"}
        allowed = {"numpy", "collections.abc", "dataclasses", "msareid.eval.rules"}
        assert imported <= allowed, (name, imported - allowed)


def test_no_dataset_is_chosen_by_name_outside_its_reader() -> None:
    """Every choice by dataset name goes through msareid.data.datasets: no module compares a name
    with a literal dataset name (the readers name themselves once, in their class)."""
    names = ("sysu", "regdb", "llcm", "manifest", "synthetic")
    offenders = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                literals = [c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
                if any(v in names for v in literals):
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not offenders, offenders


def test_a_dataset_is_one_reader_and_one_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                               capsys: pytest.CaptureFixture, synth_regdb: Path) -> None:
    """The README's walkthrough: a reader class plus an entry in DATASETS, and the command line,
    the config and evaluation know the new name."""
    from msareid.cli import main
    from msareid.data.datasets import DATASETS
    from msareid.data.regdb import RegDB
    from msareid.eval.rules import RankingRules
    from msareid.recipes import load_config

    class Mirror(RegDB):  # RegDB's layout under another name and other rules
        name = "mirror"
        title = "Mirror"
        rules = RankingRules("mirror", cmc="identity")
        directions = ("visible-to-thermal",)

        def summary(self, verify: bool = False) -> dict:
            return {**super().summary(verify), "dataset": self.name}

    monkeypatch.setitem(DATASETS, "mirror", Mirror)
    assert main(["check-data", "mirror", "--root", str(synth_regdb), "--json"]) == 0
    assert '"dataset": "mirror"' in capsys.readouterr().out
    assert load_config(None, ["data.name=mirror"]).data.name == "mirror"
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 5, 30)
    np.savez(tmp_path / "f.npz", query_feat=rng.normal(size=(30, 4)), gallery_feat=rng.normal(size=(30, 4)),
             query_pid=ids, gallery_pid=ids, query_cam=np.ones(30, int), gallery_cam=np.full(30, 2))
    assert main(["evaluate", "--features", str(tmp_path / "f.npz"), "--protocol", "mirror", "--json"]) == 0
    assert '"rules": "mirror"' in capsys.readouterr().out
    assert main(["synth", "mirror", "--out", str(tmp_path / "m"), "--ids", "4"]) == 0  # inherits RegDB's writer
    assert (tmp_path / "m" / "idx" / "train_visible_1.txt").is_file()
