"""Training each system for a few steps gives the weights recorded in tests/data/reference (bit for
bit on the platform they were recorded on), and a checkpoint written by earlier code still loads,
evaluates and resumes to the recorded figures and weights."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest
import torch

REFERENCE = Path(__file__).resolve().parent / "data" / "reference"


def _runs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reference_runs", REFERENCE / "runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUNS = _runs()


@pytest.fixture(scope="module")
def reference_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from msareid.data.synthetic import write_sysu

    return write_sysu(tmp_path_factory.mktemp("reference") / "sysu", RUNS.synthetic_spec())


@pytest.fixture
def micro(monkeypatch: pytest.MonkeyPatch) -> None:
    from msareid.models import backbones

    monkeypatch.setitem(backbones.BACKBONES, "micro", None)
    RUNS.register_micro()


def _assert_same_weights(state: dict[str, torch.Tensor], recorded: dict, platform: dict) -> None:
    assert sorted(state) == sorted(recorded["digest"]), "the state dict's keys changed"
    if platform == RUNS.fingerprint():
        changed = [k for k, h in RUNS.digest(state).items() if h != recorded["digest"][k]]
        assert not changed, f"weights differ from the recorded ones (bit for bit): {changed[:5]}"
    else:  # another CPU's kernels round differently: the same training within float tolerance
        for key, value in RUNS.sums(state).items():
            assert value == pytest.approx(recorded["sums"][key], rel=1e-3, abs=1e-3), key


@pytest.mark.parametrize("name", list(RUNS.RUNS))
def test_training_gives_the_recorded_weights(name: str, reference_data: Path, tmp_path: Path) -> None:
    recorded = json.loads((REFERENCE / "weights.json").read_text())
    state = RUNS.train_run(name, reference_data, tmp_path)
    _assert_same_weights(state, recorded["runs"][name], recorded["platform"])


def test_an_older_checkpoint_loads_evaluates_and_resumes(micro: None, reference_data: Path, tmp_path: Path) -> None:
    from msareid.engine import train
    from msareid.inference import evaluate_checkpoint, load_trained
    from msareid.recipes import with_overrides

    expected = json.loads((REFERENCE / "legacy.json").read_text())
    recorded = json.loads((REFERENCE / "weights.json").read_text())["platform"]
    figures, _ = evaluate_checkpoint(REFERENCE / "legacy.pt", lambda e: dataclasses.replace(e, trials=2),
                                     root=str(reference_data))
    for key, value in expected["evaluation"].items():
        assert figures[key] == (pytest.approx(value, abs=1e-6) if isinstance(value, float) else value), key
    _, config, _ = load_trained(REFERENCE / "legacy.pt")
    shutil.copy(REFERENCE / "legacy.pt", tmp_path / "last.pt")
    config = with_overrides(config, [f'data.root="{reference_data}"', f'data.cache_dir="{tmp_path / "cache"}"',
                                     "train.epochs=3"])
    train(config, tmp_path, resume=True, progress=False)
    state = torch.load(tmp_path / "last.pt", weights_only=True)["model"]
    _assert_same_weights(state, expected["resumed"], recorded)
