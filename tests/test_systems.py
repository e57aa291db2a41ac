"""Systems (msareid.systems): a system is one module and one entry of SYSTEMS; its recipe is written
once (config files start from it, the Table 3 rows are built from it); config files include a base
and a system; every choice list comes from its registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from msareid.ablation.plan import plan
from msareid.ablation.rows import ROW_SETS
from msareid.cli import build_parser, main
from msareid.config import config_to_dict
from msareid.errors import UserError
from msareid.recipes import load_config
from msareid.systems import SYSTEMS, describe
from msareid.systems.base import Step, System, Term
from msareid.systems.baseline import NO_ISA


@pytest.mark.parametrize("dataset", ["sysu", "regdb"])
def test_config_files_and_the_table3_rows_plan_the_same_runs(dataset: str, tmp_path: Path) -> None:
    base = load_config(f"configs/{dataset}.toml")
    runs = {r.row.name: r for r in plan(base, list(ROW_SETS["table3"]), [0], tmp_path)}
    for name in ("agw", "ddag"):
        from_file = load_config(f"configs/{dataset}_{name}.toml", ["train.seed=0"])
        assert config_to_dict(runs[SYSTEMS[name].title].config) == config_to_dict(from_file), name
    # MSA(AGW) is AGW's file plus MSA's settings, and nothing else
    msa_agw = load_config(f"configs/{dataset}_agw.toml", ["model.r2i=true", "model.i2r=true",
                                                          'loss.source_loss="ssl_plus"', 'loss.target_loss="ssl"'])
    expected = config_to_dict(runs["MSA(AGW)"].config)
    got = config_to_dict(msa_agw)
    assert {k: v for k, v in got["loss"].items() if k != "gamma"} == {k: v for k, v in expected["loss"].items()
                                                                      if k != "gamma"}
    assert got["model"] == expected["model"] and got["train"] == expected["train"]
    assert expected["loss"]["gamma"] == base.loss.gamma  # MSA(AGW) keeps the base's loss weights


def test_a_config_starts_from_a_base_then_systems_then_its_own_tables(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text('[data]\nname = "regdb"\nheight = 64\n[train]\nepochs = 7\n')
    (tmp_path / "mid.toml").write_text('base = "base.toml"\nsystem = ["agw", "ca"]\n[train]\nepochs = 5\n')
    config = load_config(tmp_path / "mid.toml", ["sampler.num_ids=3"])
    assert config.data.name == "regdb" and config.data.height == 64  # from the base file
    assert config.model.non_local == "one" and config.data.channel_aug  # both systems' settings
    assert config.train.epochs == 5 and config.sampler.num_ids == 3  # own tables, then --set win
    (tmp_path / "loop.toml").write_text('base = "loop.toml"\n')
    with pytest.raises(UserError, match="loop.toml: base = 'loop.toml' includes itself"):
        load_config(tmp_path / "loop.toml")
    (tmp_path / "bad.toml").write_text('system = "dgaa"\n')
    with pytest.raises(UserError, match="bad.toml: system 'dgaa' is not one of b, msa, agw, ddag, ca"):
        load_config(tmp_path / "bad.toml")
    (tmp_path / "nobase.toml").write_text('base = "none.toml"\n')
    with pytest.raises(UserError, match="none.toml does not exist"):
        load_config(tmp_path / "nobase.toml")


def test_reports_name_runs_by_one_rule() -> None:
    names = {row.name: describe(r.config) for row, r in zip(ROW_SETS["table3"], plan(
        load_config("configs/tiny.toml"), list(ROW_SETS["table3"]), [0], Path("x")))}
    assert names == {"AGW": "AGW", "DDAG": "DDAG", "MSA(AGW)": "MSA(AGW)"}
    assert describe(load_config("configs/tiny.toml")) == "MSA"
    assert describe(load_config("configs/tiny.toml", ["model.i2r=false"])) == "B + ISA + SSC (R2I; X_s-X_a ssl_plus, " \
                                                                            "X_t-X_a ssl)"
    assert describe(load_config("configs/sysu_agw.toml", ["model.r2i=true"])) == "B + ISA (R2I) on AGW's network"


def test_choice_lists_come_from_their_registries() -> None:
    parser = build_parser()
    ablate = parser._subparsers._group_actions[0].choices["ablate"]
    rows_help = next(a.help for a in ablate._actions if "--rows" in a.option_strings)
    for name, rows in ROW_SETS.items():
        assert f"{name} ({', '.join(r.name for r in rows)})" in rows_help
    profile = parser._subparsers._group_actions[0].choices["profile"]
    classes_help = next(a.help for a in profile._actions if "--num-classes" in a.option_strings)
    assert "713 for llcm" in classes_help


def test_fig7_is_a_row_set_of_loss_proportions(tmp_path: Path) -> None:
    runs = plan(load_config("configs/regdb.toml"), list(ROW_SETS["fig7"]), [0], tmp_path)
    weights = [(r.config.loss.alpha, r.config.loss.beta, r.config.loss.gamma) for r in runs]
    assert weights[0] == (1.3, 1.0, 0.7) and len(set(weights)) == len(weights)
    assert all(r.config.model.r2i and r.config.model.i2r for r in runs)


class _MaxPooled(System):
    """A demonstration system: B with a max-pooled feature beside F's, its own ID term, and that
    feature as the test feature. Written here, registered by one entry of SYSTEMS."""

    name = "bmax"
    title = "Bmax"
    summary = "B with a max-pooled test feature"
    recipe = NO_ISA
    feature_titles = {"max": "max-pooled feature"}

    def extend_embedding(self, config, embed) -> None:
        embed.add_feature_head("max", _MaxHead(embed.feature_dim), test_feature=True)

    def loss_terms(self, step: Step) -> list[Term]:
        logits = step.out.extra_logits["max"]
        return [Term("max_id", nn.functional.cross_entropy(logits, step.labels), 0.5)]

    def head_modules(self, net) -> list[nn.Module]:
        return [net.embed.max_head]


class _MaxHead(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, maps: torch.Tensor, bnneck: torch.Tensor) -> torch.Tensor:
        return self.norm(maps.amax(dim=(2, 3)))


def test_adding_a_system_is_one_module_and_one_entry(monkeypatch: pytest.MonkeyPatch, synth_sysu: Path,
                                                      tmp_path: Path, tiny_overrides, capsys) -> None:
    monkeypatch.setitem(SYSTEMS, "bmax", _MaxPooled())
    (tmp_path / "bmax.toml").write_text('base = "' + str(Path("configs/tiny.toml").resolve()) + '"\nsystem = "bmax"\n')
    run = tmp_path / "run"
    argv = ["train", "--config", str(tmp_path / "bmax.toml"), "--out", str(run), "--no-progress"]
    for o in tiny_overrides(synth_sysu, tmp_path / "cache"):
        argv += ["--set", o]
    assert main(argv) == 0
    capsys.readouterr()
    epochs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"epoch"' in x]
    assert "max_id" in next(e for e in epochs if e.get("event") == "epoch")["losses"]  # its term, logged
    assert main(["evaluate", "--checkpoint", str(run / "last.pt"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["feature"] == "max" and result["bnneck"]["feature"] == "bnneck"  # its test feature first
    assert main(["export", "--checkpoint", str(run / "last.pt"), "--format", "onnx", "--out",
                 str(tmp_path / "m.onnx")]) == 0
    assert "'max'" in capsys.readouterr().out
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    assert "max-pooled feature" in (tmp_path / "r.html").read_text()
