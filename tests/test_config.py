from pathlib import Path

import pytest

from msareid.config import Config, DataConfig, dump_toml, parse_override, write_resolved
from msareid.errors import UserError
from msareid.recipes import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_and_overrides() -> None:
    cfg = load_config(None, ["data.root=/data/SYSU MM01", "train.seed=3", "data.random_erasing=1", "data.name=regdb"])
    assert cfg.data == DataConfig(name="regdb", root="/data/SYSU MM01", random_erasing=1.0)
    assert cfg.train.seed == 3 and cfg.sampler.num_ids == 6


def test_overrides_beat_the_file(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("[data]\nheight = 64\nwidth = 32\n[sampler]\nnum_ids = 2\n")
    cfg = load_config(tmp_path / "c.toml", ["data.height=96"])
    assert (cfg.data.height, cfg.data.width, cfg.sampler.num_ids) == (96, 32, 2)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    assert isinstance(load_config(path), Config)


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config(None, ['data.root=C:\\data "x"', "data.height=64"])
    written = write_resolved(cfg, tmp_path / "run")
    assert load_config(written) == cfg
    assert dump_toml(cfg).startswith("[data]\nname = ")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.heigth=3", r"unknown key data\.heigth; valid keys of \[data\]: name, root, trial, height"),
        ("optim.lr=3", r"unknown section \[optim\]; valid sections: data, sampler, model, loss, train"),
        ("model.backbone=vgg", r"model\.backbone: .vgg. is not one of resnet50, densenet121, resnet18, tiny"),
        ("loss.source_loss=l2", r"loss\.source_loss: .l2. is not one of ssl_plus, ssl, none"),
        ("data.height=tall", r"config key data\.height: expected an integer, got 'tall'"),
        ("data.height=2.5", r"data\.height: expected an integer"),
        ("data.height=0", r"data\.height: expected a positive value"),
        ("data.name=market", r"data\.name: 'market' is not one of sysu, regdb, llcm, manifest"),
        ("data.root=3", r"data\.root: expected str, got 3"),
        ("seed=3", r"expected section\.key=value"),
    ],
)
def test_bad_keys_and_values_are_named(override: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        load_config(None, [override])


def test_bad_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text("[data\n")
    with pytest.raises(UserError, match="bad.toml is not valid TOML"):
        load_config(tmp_path / "bad.toml")


def test_parse_override_reads_toml_values() -> None:
    assert parse_override("a.b=[1, 2]") == ("a", "b", [1, 2])
    assert parse_override("a.b=true") == ("a", "b", True)
    assert parse_override("a.b=/x/y") == ("a", "b", "/x/y")
