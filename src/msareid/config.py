"""Configuration: frozen dataclasses read from TOML, overridden with ``--set section.key=value``.

Field names are the parameter names of the constructors they feed. Unknown sections or keys and
values of the wrong type are errors that name the key and list the valid choices.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msareid.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

@dataclass(frozen=True)
class DataConfig:
    """Where the images are and how they are decoded and augmented."""

    name: str = "sysu"  # a name of msareid.data.datasets.DATASETS: sysu | regdb | llcm | manifest
    root: str = ""  # dataset root folder, or the manifest CSV for name = "manifest"
    trial: int = 1  # RegDB trial 1..10
    height: int = 288
    width: int = 144
    pad: int = 10  # padding before the random crop
    random_erasing: float = 0.5  # probability
    erasing_stage: str = "before_isa"  # before_isa (in the loader) | after_isa (on all four modalities in F's batch)
    channel_aug: bool = False  # CAJ's channel augmentation (a second RGB view); needs random_erasing = 0
    cache_dir: str = ""  # decoded-image cache; "" means $MSAREID_CACHE_DIR or ~/.cache/msareid
    num_workers: int = 2


@dataclass(frozen=True)
class SamplerConfig:
    """The cross-modality identity sampler: ``num_ids`` x (``num_instances`` RGB + IR) a batch."""

    num_ids: int = 6
    num_instances: int = 4


@dataclass(frozen=True)
class ModelConfig:
    """The network: embedding net F and which ISA modules exist (Table 4 rows)."""

    backbone: str = "resnet50"  # a name of msareid.models.backbones.BACKBONES: resnet50 | densenet121 | resnet18 | tiny
    pretrained: str = "imagenet"  # imagenet (torchvision weights API) | none | path to a state dict
    last_stride: int = 1
    r2i: bool = True  # the RGB -> R2I style adapter
    i2r: bool = True  # the IR -> I2R style adapter
    isa_init: str = "default"  # default (PyTorch init) | dirac (identity); docs/evidence.md, "Decisions, with evidence"
    checkpoint_segments: int = 0  # activation checkpointing of F's backbone in this many segments (0: off)
    isa_space: str = "normalized"  # pixel space of ISA and SSC: normalized (ImageNet) | unit ([0, 1] images)
    # Pieces of the Table 3 systems' networks (msareid.systems): a stem of its own for RGB and for IR,
    # non-local blocks, GeM pooling.
    two_stream: bool = False  # modality-specific stems (ResNet: conv1, bn1, relu, maxpool), the rest shared
    generated_stem: str = "target"  # stem of ISA's images in a two-stream F: target (R2I -> IR stem) | source
    non_local: str = "off"  # off | one (the reference's one inner channel) | half (in_channels // 2)
    pooling: str = "avg"  # avg | gem (p = 3, the reference's fixed formula)
    # Part aggregation in F (its feature is the test feature) and graph attention beside it.
    parts: int = 0  # IWPA's horizontal parts (3 in its reference); 0: no part aggregation
    graph_attention: bool = False  # CGSA over the batch, trained with the graph loss at its dynamic weight


@dataclass(frozen=True)
class LossConfig:
    """Weights and choices of the objective (Eq. 9-11); the names are msa_losses' parameters."""

    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 1.0
    margin: float = 0.5  # of the batch-hard triplet (WRT has none)
    triplet: str = "batch_hard"  # batch_hard (Eq. 10) | wrt (weighted regularised triplet, no margin)
    source_loss: str = "ssl_plus"  # on (X_s, X_a): ssl_plus | ssl | none  (Table 5)
    target_loss: str = "ssl"  # on (X_t, X_a): ssl | ssl_plus | none
    window_size: int = 11
    sigma: float = 1.5


@dataclass(frozen=True)
class TrainConfig:
    """Training (the paper: Adam, 60 epochs; warm-up and decay follow the reference code)."""

    seed: int = 0
    epochs: int = 60
    optimizer: str = "adam"  # adam (the paper) | sgd (momentum, Nesterov)
    lr: float = 3.5e-4  # of BNNeck and classifier; the other parameters get lr x base_lr_factor
    base_lr_factor: float = 1.0  # e.g. 0.1: lr 0.1 for BNNeck and classifier, 0.01 for the rest
    momentum: float = 0.9  # sgd only
    nesterov: bool = True  # sgd only
    weight_decay: float = 5e-4
    warmup_epochs: int = 10  # lr x (epoch + 1) / warmup_epochs during the first epochs
    milestones: list[int] = field(default_factory=lambda: [20, 50])  # lr x lr_decay at each
    lr_decay: float = 0.1
    max_steps_per_epoch: int = 0  # 0: the full epoch, max(#RGB, #IR) // (P x K) + 1 batches
    checkpoint_every: int = 0  # also checkpoint every N steps within an epoch (0: epoch ends only)
    keep_last: int = 2  # epoch checkpoints kept besides last.pt
    keep_every: int = 0  # also keep every K-th epoch's checkpoint (0: none)
    log_every: int = 20  # steps between metrics.jsonl lines
    amp: bool = True  # mixed precision (CUDA only)
    channels_last: bool = True  # memory format of F and its inputs (faster on GPUs and on CPUs: bench/README.md)
    deterministic: bool = False  # deterministic kernels (exact resume on GPU too)
    tensorboard: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch intra-op threads; 0: the cores this process may use / local processes
    reuse_memory: bool = True  # glibc: keep freed memory for the next step instead of page-faulting it anew


def _opt(default: Any, help: str, training: bool = False) -> Any:
    """A field with its command-line help (``msareid evaluate`` builds its options from these, but
    not from ``training`` ones, which only a training run reads)."""
    return field(default=default, metadata={"help": help, "training": training})


@dataclass(frozen=True)
class EvalConfig:
    """The test protocol used after (and optionally during) training, and by ``msareid evaluate``."""

    mode: str = _opt("all", "SYSU-MM01 search mode: all | indoor")
    shots: int = _opt(1, "SYSU-MM01 gallery images per (id, camera): 1 | 10")
    trials: int = _opt(10, "trials (SYSU-MM01, LLCM: 1..10)")
    sampler: str = _opt("agw", "SYSU-MM01 gallery sampler: agw | official (needs perm)")
    perm: str = _opt("", "rand_perm_cam.mat of the official sampler")
    direction: str = _opt("", "search direction; empty: the dataset's default (RegDB visible-to-thermal | "
                              "thermal-to-visible; LLCM ir-to-visible | visible-to-ir)")
    flip: bool = _opt(False, "average the features of each image and its mirror")
    metric: str = _opt("cosine", "cosine (L2-normalised features) | euclidean (features as they are)")
    rerank: bool = _opt(False, "k-reciprocal re-ranking (Zhong et al. 2017) with k1, k2, lambda_value")
    k1: int = _opt(20, "re-ranking k1")
    k2: int = _opt(6, "re-ranking k2")
    lambda_value: float = _opt(0.3, "re-ranking lambda")
    batch_size: int = _opt(64, "images a batch when extracting")
    every: int = _opt(0, "evaluate during training every N epochs, logged in metrics.jsonl; the best epoch by "
                         "Rank-1 is reported beside the last, labelled as selected on the test set (0: off)",
                      training=True)


@dataclass(frozen=True)
class Config:
    """The whole configuration of a run."""

    data: DataConfig = field(default_factory=DataConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


_CHOICES: dict[str, tuple[Any, ...]] = {
    "eval.shots": (1, 10),
    "model.isa_init": ("dirac", "default"),
    "model.isa_space": ("normalized", "unit"),
    "model.generated_stem": ("target", "source"),
    "model.non_local": ("off", "one", "half"),
    "model.pooling": ("avg", "gem"),
    "loss.triplet": ("batch_hard", "wrt"),
    "train.optimizer": ("adam", "sgd"),
    "data.erasing_stage": ("before_isa", "after_isa"),
    "loss.source_loss": ("ssl_plus", "ssl", "none"),
    "loss.target_loss": ("ssl", "ssl_plus", "none"),
    "eval.mode": ("all", "indoor"),
    "eval.sampler": ("agw", "official"),
    "eval.metric": ("cosine", "euclidean"),
}
_POSITIVE = ("data.height", "data.width", "sampler.num_ids", "sampler.num_instances", "model.last_stride",
             "loss.window_size", "loss.sigma", "train.epochs", "train.lr", "train.log_every", "eval.trials",
             "eval.batch_size", "train.base_lr_factor", "eval.k1", "eval.k2", "train.lr_decay")
_NON_NEGATIVE = ("train.weight_decay", "train.warmup_epochs", "train.keep_last", "loss.alpha", "loss.beta",
                 "loss.gamma", "loss.margin", "model.checkpoint_segments", "model.parts", "train.threads",
                 "train.max_steps_per_epoch", "train.checkpoint_every", "train.keep_every", "train.momentum",
                 "eval.every", "data.num_workers", "data.pad")
_RANGES = {
    "train.seed": (0, 2**32 - 1),  # NumPy seeds
    "eval.lambda_value": (0.0, 1.0),  # a mixing weight
    "data.random_erasing": (0.0, 1.0),  # a probability
    "data.height": (16, 4096), "data.width": (8, 4096),  # below 16 x 8 no backbone keeps a feature map
    "data.trial": (1, 10),  # RegDB's ten splits
    "train.threads": (0, 1024),
}
# Settings that cannot change what a run learns (where and how fast it runs, what it logs, how
# often it keeps checkpoints): a run folder trained with other values is the same run. Evaluation
# settings ([eval]) do not change the weights either; they decide the figures, which are redone.
NOT_IDENTITY = ("data.num_workers", "data.cache_dir", "train.device", "train.threads", "train.log_every",
                "train.tensorboard", "train.checkpoint_every", "train.keep_last", "train.keep_every",
                "train.reuse_memory")


def identity_keys_differing(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The dotted keys whose values differ between two configs (nested dicts) and that make them
    different runs: every key but :data:`NOT_IDENTITY` and the ``[eval]`` section."""
    differing = []
    for section in sorted(set(a) | set(b)):
        if section == "eval":
            continue
        mine, theirs = a.get(section, {}), b.get(section, {})
        for key in sorted(set(mine) | set(theirs)):
            dotted = f"{section}.{key}"
            if dotted not in NOT_IDENTITY and mine.get(key) != theirs.get(key):
                differing.append(dotted)
    return differing


# Keys that moved: configs and checkpoints written before still load.
_MOVED = {("train", "eval_every"): ("eval", "every")}


def _sections() -> dict[str, type]:
    return typing.get_type_hints(Config)


def _field_types(section_cls: type) -> dict[str, type]:
    return typing.get_type_hints(section_cls)


def _coerce(key: str, value: Any, expected: Any) -> Any:
    if typing.get_origin(expected) is list:
        (item,) = typing.get_args(expected)
        if not isinstance(value, list):
            raise UserError(f"config key {key}: expected a list, e.g. [20, 50], got {value!r}")
        return [_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is bool and not isinstance(value, bool):
        raise UserError(f"config key {key}: expected true or false, got {value!r}")
    if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise UserError(f"config key {key}: expected an integer, got {value!r}")
    if not isinstance(value, expected):
        raise UserError(f"config key {key}: expected {expected.__name__}, got {value!r}")
    return value


def fixed_choices(key: str) -> tuple[Any, ...] | None:
    """The valid values of ``key`` that this module fixes (names of registries are checked by
    :mod:`msareid.recipes`, which passes them to :func:`config_from_dict`)."""
    return _CHOICES.get(key)


def _validate(key: str, value: Any, names: Mapping[str, tuple[Any, ...]]) -> None:
    choices = names.get(key, _CHOICES.get(key))
    if choices is not None and value not in choices:
        shown = ", ".join(str(c) if c != "" else '""' for c in choices)
        raise UserError(f"config key {key}: {value!r} is not one of {shown}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"config key {key}: expected a finite number, got {value!r}")
    if key in _POSITIVE and value <= 0:
        raise UserError(f"config key {key}: expected a positive value, got {value!r}")
    if key in _NON_NEGATIVE and value < 0:
        raise UserError(f"config key {key}: expected 0 or more, got {value!r}")
    low, high = _RANGES.get(key, (value, value))
    if not low <= value <= high:
        raise UserError(f"config key {key}: expected {low} to {high}, got {value!r}")


def config_from_dict(raw: dict[str, Any], source: str = "config",
                     names: Mapping[str, tuple[Any, ...]] | None = None) -> Config:
    """Build a :class:`Config` from nested dicts, rejecting unknown keys, wrong types and values out
    of range; ``names`` gives the valid values of keys that name a registry entry (dataset,
    backbone, direction), which :mod:`msareid.recipes` supplies."""
    names = names or {}
    sections = _sections()
    built = {}
    raw = {name: dict(values) if isinstance(values, dict) else values for name, values in raw.items()}
    for (old_section, old_key), (new_section, new_key) in _MOVED.items():
        table = raw.get(old_section)
        if isinstance(table, dict) and old_key in table:
            raw.setdefault(new_section, {}).setdefault(new_key, table.pop(old_key))
    for name, values in raw.items():
        if name not in sections:
            raise UserError(f"{source}: unknown section [{name}]; valid sections: {', '.join(sections)}")
        if not isinstance(values, dict):
            raise UserError(f"{source}: [{name}] must be a table of keys")
        types = _field_types(sections[name])
        kwargs = {}
        for key, value in values.items():
            if key not in types:
                raise UserError(
                    f"{source}: unknown key {name}.{key}; valid keys of [{name}]: {', '.join(types)}"
                )
            kwargs[key] = _coerce(f"{name}.{key}", value, types[key])
            _validate(f"{name}.{key}", kwargs[key], names)
        built[name] = sections[name](**kwargs)
    config = Config(**built)
    if config.data.channel_aug and config.data.random_erasing > 0:
        raise UserError(f"{source}: data.channel_aug = true brings its own erasing (channel random erasing, p 0.5); "
                        "set data.random_erasing = 0 with it")
    return config


def config_to_dict(config: Config) -> dict[str, dict[str, Any]]:
    """Nested plain dicts of ``config`` (what checkpoints and resolved-config files hold)."""
    return dataclasses.asdict(config)


def parse_override(text: str) -> tuple[str, str, Any]:
    """Split ``section.key=value``; the value is read as TOML, else taken as a plain string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise UserError(f"--set {text!r}: expected section.key=value, e.g. --set train.seed=1")
    dotted, raw = text.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return section, key, value


def read_layers(path: str | os.PathLike[str], _seen: tuple[Path, ...] = ()) -> list[dict[str, Any]]:
    """The tables of a TOML config file as layers, each applied over the ones before: the layers of
    its ``base`` file (a path relative to the file) first, then its own. A layer may hold
    ``system`` (a name, or a list of names, of :data:`msareid.systems.SYSTEMS`), whose settings
    :mod:`msareid.recipes` applies before the layer's tables."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file {path} does not exist (see configs/ for examples)")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8-sig"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    base = raw.pop("base", None)
    if base is None:
        return [raw]
    if not isinstance(base, str):
        raise UserError(f"{path}: base must be the path of a config file, e.g. base = \"sysu.toml\"")
    parent = (p.parent / base).resolve()
    if parent in _seen or parent == p.resolve():
        raise UserError(f"{path}: base = {base!r} includes itself")
    return [*read_layers(parent, (*_seen, p.resolve())), raw]


def merge(raw: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with the tables of ``layer`` applied key by key (a non-table entry replaces)."""
    out = {name: dict(values) if isinstance(values, dict) else values for name, values in raw.items()}
    for name, values in layer.items():
        if isinstance(values, dict) and isinstance(out.get(name), dict):
            out[name].update(values)
        else:
            out[name] = dict(values) if isinstance(values, dict) else values
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def dump_toml(config: Config) -> str:
    """The resolved config as TOML text that :func:`load_config` reads back unchanged."""
    lines = []
    for section, values in config_to_dict(config).items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items())
        lines.append("")
    return "\n".join(lines)


def write_resolved(config: Config, folder: str | os.PathLike[str]) -> Path:
    """Write ``config.toml`` (the resolved config) into ``folder``, atomically."""
    from msareid.fileio import write_text

    return write_text(Path(folder) / "config.toml", dump_toml(config))
