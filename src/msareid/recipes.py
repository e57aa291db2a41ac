"""Configs as users write them: TOML files that may start from a ``base`` file and a ``system``'s
settings, ``--set section.key=value`` overrides, and every name checked against its registry.

Layers apply in this order, later ones winning: the base file's layers, the ``system``'s settings
(:data:`msareid.systems.SYSTEMS`, several in order for a list), the file's own tables, then the
overrides. So ``configs/sysu_agw.toml`` is ``base = "sysu.toml"`` and ``system = "agw"``: the
dataset and protocol of one, the recipe of the other, written once each.

:mod:`msareid.config` checks types, ranges and fixed choices; the names of datasets, backbones and
search directions come from their registries here (``DATASETS``, ``BACKBONES``).
"""

from __future__ import annotations

import os
from typing import Any

from msareid.config import Config, config_from_dict, config_to_dict, fixed_choices, merge, parse_override, read_layers
from msareid.errors import UserError


def registry_names() -> dict[str, tuple[Any, ...]]:
    """The valid values of the keys that name a registry entry."""
    from msareid.data import datasets
    from msareid.models.backbones import BACKBONES

    return {"model.backbone": tuple(BACKBONES), "data.name": datasets.dataset_names(aliases=True),
            "eval.direction": ("",) + datasets.directions()}


def choices_of(key: str) -> tuple[Any, ...] | None:
    """The valid values of ``key``: a registry's names or the config's fixed choices (None: any)."""
    names = registry_names()
    return names[key] if key in names else fixed_choices(key)


def checked(raw: dict[str, Any], source: str) -> Config:
    """:func:`msareid.config.config_from_dict` with the registries' names, and the protocol checked
    against the dataset's reader (a direction it has, the official sampler's file), so that a
    setting evaluation would refuse is refused before anything trains."""
    from msareid.data.base import TestSettings
    from msareid.data.datasets import reader_class

    config = config_from_dict(raw, source, registry_names())
    try:
        reader_class(config.data.name).check_settings(TestSettings.of(config.eval))
    except UserError as exc:
        raise UserError(f"{source}: {exc}") from None
    return config


def _system_settings(names: Any, source: str) -> dict[str, dict[str, Any]]:
    from msareid.systems import recipe

    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UserError(f"{source}: system must be a name or a list of names, e.g. system = \"agw\"")
    try:
        settings = recipe(names)
    except UserError as exc:
        raise UserError(f"{source}: {exc}") from None
    out: dict[str, dict[str, Any]] = {}
    for dotted, value in settings.items():
        section, key = dotted.split(".", 1)
        out.setdefault(section, {})[key] = value
    return out


def _apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        section, key, value = parse_override(text)
        raw = merge(raw, {section: {key: value}})
    return raw


def load_config(path: str | os.PathLike[str] | None, overrides: list[str] = ()) -> Config:
    """Read a TOML config (or the defaults when ``path`` is None), its base and system layers, and
    apply ``--set`` overrides; every key, type, range and name is checked."""
    raw: dict[str, Any] = {}
    source = "defaults" if path is None else str(path)
    for layer in read_layers(path) if path is not None else []:
        layer = dict(layer)
        if "system" in layer:
            raw = merge(raw, _system_settings(layer.pop("system"), source))
        raw = merge(raw, layer)
    return checked(_apply_overrides(raw, list(overrides)), source)


def with_overrides(config: Config, overrides: list[str] = (), values: dict[str, dict[str, Any]] | None = None,
                   source: str = "overrides") -> Config:
    """``config`` with ``{section: {key: value}}`` then ``--set section.key=value`` texts applied,
    every value checked as in a config file."""
    raw = merge(config_to_dict(config), values or {})
    return checked(_apply_overrides(raw, list(overrides)), source)
