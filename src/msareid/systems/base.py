"""What a system is: the settings it implies and the hooks through which its pieces join training.

A system (the baseline, MSA, or a method the paper compares with) is one module of
:mod:`msareid.systems` holding one :class:`System`. The engine, the objective, inference, export
and the reports never name a system: they call these hooks on every system of
:data:`msareid.systems.SYSTEMS`, and a system whose pieces are not in the network does nothing.

Hooks, in the order a run meets them:

- :attr:`System.recipe`: the config keys the system sets (dotted, as ``--set`` writes them); a
  config file says ``system = "NAME"`` to start from it, an ablation row is built from it.
- :meth:`System.extend_embedding`, :meth:`System.extend_network`: network pieces it adds to F
  (a further test feature) and beside F (modules that only serve training), from the config.
- :meth:`System.loss_terms`: terms it adds to the objective of a step (Eq. 11 and beyond).
- :meth:`System.initial_state`, :meth:`System.end_epoch`: numbers it carries from epoch to epoch,
  saved in checkpoints under their own keys.
- :meth:`System.head_modules`, :meth:`System.training_only`: which of its modules learn at the
  full rate, and which are dropped at test time.
- :meth:`System.matches`, :attr:`System.pieces`: how a config is named in reports and tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch
    from torch import nn

    from msareid.config import Config, LossConfig
    from msareid.models.embedding import EmbeddingNet, Embeddings
    from msareid.models.msa import MSANet


@dataclass(frozen=True)
class Batch:
    """One training batch, by name: RGB sample k and IR sample k share the identity ``labels[k]``;
    ``rgb_second`` is a second view of each RGB image (channel augmentation) or None."""

    rgb: torch.Tensor
    ir: torch.Tensor
    labels: torch.Tensor
    rgb_second: torch.Tensor | None = None


@dataclass(frozen=True)
class Hooks:
    """What the trainer lends the objective: ``erase`` augments F's whole batch (erasing after ISA),
    ``gather(tensor, blocks)`` gives the triplet loss the global batch under several ranks, and
    ``state`` holds the systems' per-epoch numbers (:meth:`System.initial_state`)."""

    erase: Callable[[torch.Tensor], torch.Tensor] | None = None
    gather: Callable[[torch.Tensor, int], torch.Tensor] | None = None
    state: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """What the objective computed in a step, for the systems that add terms to it: the network, F's
    outputs on the whole batch (``labels`` one an image), the pooled features and labels the triplet
    loss used (the global batch under several ranks), the loss settings and the per-epoch state."""

    net: MSANet
    out: Embeddings
    labels: torch.Tensor
    pooled: torch.Tensor
    pooled_labels: torch.Tensor
    loss: LossConfig
    state: Mapping[str, float]


@dataclass(frozen=True)
class Term:
    """A loss term a system adds: ``total += weight * value``; logged unweighted under ``name``."""

    name: str
    value: torch.Tensor
    weight: float = 1.0


class System:
    """The baseline's behaviour: no settings of its own, no pieces, no terms. A system overrides
    what it brings; see the module docstring for the hooks."""

    name: ClassVar[str] = ""  # the key of SYSTEMS and of ``system = "..."`` in configs
    title: ClassVar[str] = ""  # how tables and reports name it
    summary: ClassVar[str] = ""  # one line: what it is, with its reference
    recipe: ClassVar[Mapping[str, Any]] = {}  # the config keys it sets
    pieces: ClassVar[tuple[tuple[str, str], ...]] = ()  # (config key, short label) of its network pieces
    feature_titles: ClassVar[Mapping[str, str]] = {}  # how results name the features its heads give

    def matches(self, config: Config) -> bool:
        """Whether ``config`` trains this system's network (then reports name the run after it)."""
        return False

    def extend_embedding(self, config: Config, embed: EmbeddingNet) -> None:
        """Add this system's pieces to F (called right after F is built)."""

    def extend_network(self, config: Config, net: MSANet) -> None:
        """Add this system's training-only modules to the network (called after it is built)."""

    def loss_terms(self, step: Step) -> list[Term]:
        """The terms this system adds to a step's objective (none when its pieces are absent)."""
        return []

    def initial_state(self, net: MSANet) -> dict[str, float]:
        """The per-epoch numbers this system carries for ``net``, at the start of training."""
        return {}

    def end_epoch(self, state: Mapping[str, float], epoch_means: Mapping[str, float]) -> dict[str, float]:
        """The numbers for the next epoch, from this epoch's state and mean loss terms."""
        return {}

    def head_modules(self, net: MSANet) -> list[nn.Module]:
        """Modules of ``net`` that learn at ``train.lr`` (the rest at ``lr x base_lr_factor``)."""
        return []

    def training_only(self, net: MSANet) -> list[nn.Module]:
        """Modules of ``net`` that serve training only (not run at test time, not exported)."""
        return []
