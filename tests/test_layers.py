"""The import rules of the package (docs/design.md, "Layers"), read from the source: who may import
whom, imports inside functions and through importlib included."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "msareid"


def _importlib_target(node: ast.Call) -> str | None:
    """The module an ``importlib.import_module(...)`` or ``__import__(...)`` call names: its literal
    text, or the literal start of an f-string (``f"msareid.models.{name}"`` imports from msareid.models)."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if called not in ("import_module", "__import__") or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value).rstrip(".")
    return None


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (lazy imports inside functions included, and
    modules named to importlib)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Call) and (target := _importlib_target(node)):
            names.add(target)
    return names


# The layers, lowest first: a module may import its own layer's modules and those of lower layers.
LAYERS = (
    ("errors", "fileio", "pixels", "argtypes", "threads", "locks", "allocator"),
    ("config", "rules"),
    ("data", "models", "losses"),
    ("eval",),
    ("systems", "recipes"),
    ("training",),
    ("engine", "inference", "export", "extractor", "search", "report", "ablation"),
    ("commands", "cli", "__main__", "__init__"),
)
# Modules of one layer that must not import each other, in these directions.
SAME_LAYER_FORBIDDEN = (("data", "models"), ("models", "data"), ("config", "rules"), ("rules", "config"),
                        ("losses", "data"), ("ablation", "commands"), ("ablation", "cli"), ("engine", "ablation"))


def _layer(module: str) -> tuple[int, str]:
    top = module.split(".")[1] if module.count(".") else "__init__"
    top = top.removesuffix(".py")
    for i, names in enumerate(LAYERS):
        if top in names:
            return i, top
    raise AssertionError(f"msareid.{top} is in no layer of LAYERS: add it to the layer it belongs to")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return ".".join(("msareid", *rel.parts))


def test_every_import_goes_down_the_layers() -> None:
    """The package's layers (LAYERS): e.g. config and the ranking rules below data and eval, models
    and systems below training, the ablation runner driving the library, never the command line."""
    offenders = []
    for path in _modules():
        here, top = _layer(_module_name(path))
        for imported in sorted(m for m in _imports(path) if m == "msareid" or m.startswith("msareid.")):
            if imported == "msareid":
                continue
            there, other = _layer(imported)
            if there > here or (top, other) in SAME_LAYER_FORBIDDEN:
                offenders.append(f"{path.relative_to(PACKAGE)} imports {imported}")
    assert not offenders, offenders


def test_the_layer_check_sees_imports_through_importlib(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import importlib\ndef f(n):\n    importlib.import_module(f'msareid.engine.{n}')\n"
                      "    return __import__('msareid.cli')\n")
    assert {"msareid.engine", "msareid.cli"} <= _imports(source)


def test_config_and_the_network_builders_import_no_higher_layer() -> None:
    """The rules named where they were once broken: the config imports no registry (models, data,
    systems), the network's modules import nothing of training, the runner's job not the command line."""
    config = {m for m in _imports(PACKAGE / "config.py") if m.startswith("msareid.")}
    assert config <= {"msareid.errors", "msareid.fileio"}, config
    for path in [*_modules("models"), *_modules("systems")]:
        assert not any(m.startswith("msareid.training") for m in _imports(path)), path
    job = _imports(PACKAGE / "ablation" / "job.py")
    assert not any(m.startswith(("msareid.cli", "msareid.commands")) for m in job), job
    data = {m for p in _modules("data") for m in _imports(p)}
    assert not any(m.startswith("msareid.eval") for m in data)


def _modules(under: str = "") -> list[Path]:
    return sorted((PACKAGE / under).rglob("*.py"))


def test_only_the_command_line_and_the_runner_import_the_training_engine() -> None:
    importers = [p.relative_to(PACKAGE).as_posix() for p in _modules()
                 if any(m == "msareid.engine" or m.startswith("msareid.engine.") for m in _imports(p))]
    allowed = ("cli.py", "ablation/job.py")  # the command line, and the ablation runner's child process
    assert importers and all(p in allowed or p.startswith("commands/") for p in importers), importers


@pytest.mark.parametrize(("package", "forbidden"), [("data", "msareid.models"), ("models", "msareid.data")])
def test_data_and_models_do_not_import_each_other(package: str, forbidden: str) -> None:
    offenders = {p.name: sorted(m for m in _imports(p) if m == forbidden or m.startswith(forbidden + "."))
                 for p in _modules(package)}
    assert not {k: v for k, v in offenders.items() if v}


def test_ranking_metrics_import_numpy_and_the_rules_only() -> None:
    for name in ("eval/metrics.py", "rules.py", "eval/rerank.py"):
        imported = {m for m in _imports(PACKAGE / name) if m != "__future__"}
        allowed = {"numpy", "collections.abc", "dataclasses", "msareid.rules"}
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
    """docs/design.md's walkthrough ("A dataset"): a reader class plus an entry in DATASETS, and the command line,
    the config and evaluation know the new name."""
    from msareid.cli import main
    from msareid.data.datasets import DATASETS
    from msareid.data.regdb import RegDB
    from msareid.recipes import load_config
    from msareid.rules import RankingRules

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


def test_no_function_over_60_lines_and_no_module_over_400() -> None:
    """Small modules, short functions: every function of the package (methods and nested ones
    included) under 61 lines, every module under 401."""
    long_functions, long_modules = [], []
    for path in _modules():
        source = path.read_text()
        if len(source.splitlines()) > 400:
            long_modules.append(f"{path.relative_to(PACKAGE)}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long_functions.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert not long_modules and not long_functions, (long_modules, long_functions)
