"""Systems: the baseline, MSA, the systems the paper compares with, and channel augmentation, one
module each, in one plain mapping (:data:`SYSTEMS`), as datasets are in ``DATASETS``.

Adding a system is a module with a :class:`~msareid.systems.base.System` subclass and an entry
here (docs: "Design"). Everything that differs between systems goes through the hooks of
:class:`~msareid.systems.base.System`; the rest of the package never names one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from msareid.errors import UserError
from msareid.systems.agw import Agw
from msareid.systems.base import System
from msareid.systems.baseline import Baseline
from msareid.systems.channel import ChannelAugmentation
from msareid.systems.ddag import Ddag
from msareid.systems.msa import Msa, describe_isa

if TYPE_CHECKING:
    from msareid.config import Config

SYSTEMS: dict[str, System] = {
    "b": Baseline(),
    "msa": Msa(),
    "agw": Agw(),
    "ddag": Ddag(),
    "ca": ChannelAugmentation(),
}

# F's option of a stem for each modality: a piece of several systems' networks.
TWO_STREAM = ("model.two_stream", "2-stem")


def system(name: str) -> System:
    """The system called ``name`` (a key of :data:`SYSTEMS`), or a one-line error listing them."""
    if name not in SYSTEMS:
        raise UserError(f"system {name!r} is not one of {', '.join(SYSTEMS)}")
    return SYSTEMS[name]


def recipe(names: str | list[str]) -> dict[str, Any]:
    """The settings of one system, or of several applied in order (e.g. ``["agw", "ca"]``)."""
    out: dict[str, Any] = {}
    for name in [names] if isinstance(names, str) else names:
        out.update(system(name).recipe)
    return out


def network_of(config: Config) -> System | None:
    """The system whose network ``config`` trains (the last of :data:`SYSTEMS` that matches), None
    for F alone (the baseline's or MSA's network)."""
    return next((s for s in reversed(SYSTEMS.values()) if s.matches(config)), None)


def describe(config: Config) -> str:
    """How reports, tables and ``profile`` name the run of ``config``: "MSA", "B + ISA (R2I)",
    a system's title, "MSA(<title>)" (MSA on that system's network), "B + ISA (R2I, I2R) on <title>'s
    network", "baseline (no ISA)" ..."""
    network = network_of(config)
    title = network.title if network else ""
    return describe_isa(config, title) or title or "baseline (no ISA)"


def pieces() -> tuple[tuple[str, str], ...]:
    """(config key, short label) of every network piece a system brings, two stems first."""
    return (TWO_STREAM, *(p for s in SYSTEMS.values() for p in s.pieces))


def row_keys() -> tuple[str, ...]:
    """The config keys that tell rows apart in tables: ISA, network pieces, triplet, optimiser, augmentation."""
    isa = tuple(SYSTEMS["msa"].recipe)
    return (*isa, *(key for key, _ in pieces()), "loss.triplet", "train.optimizer", "data.channel_aug")


def describe_pieces(resolved: Mapping[str, Any]) -> str:
    """The network pieces present in dotted settings, joined by "+" (e.g. "2-stem+NL+GeM"), "1-stem" when none."""
    present = [label for key, label in pieces() if resolved.get(key) not in (None, False, 0, "off", "avg")]
    return "+".join(present) or "1-stem"
