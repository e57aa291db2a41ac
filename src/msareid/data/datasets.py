"""The one mapping from dataset name to reader; every list of names in the tool comes from here.

To add a dataset: write its reader module (a :class:`~msareid.data.base.DatasetReader`) and add
one entry below (docs/design.md, "A dataset").
"""

from __future__ import annotations

import os

from msareid.data.base import DatasetReader
from msareid.data.llcm import LLCM
from msareid.data.manifest import Manifest
from msareid.data.regdb import RegDB
from msareid.data.sysu import SysuMM01
from msareid.errors import UserError
from msareid.rules import RankingRules

DATASETS: dict[str, type[DatasetReader]] = {
    "sysu": SysuMM01,
    "regdb": RegDB,
    "llcm": LLCM,
    "manifest": Manifest,
}
ALIASES = {"synthetic": "sysu"}  # the built-in demo set is written in the SYSU-MM01 layout


def dataset_names(aliases: bool = False) -> tuple[str, ...]:
    """The valid dataset names (with ``aliases``, also the names that stand for another)."""
    return tuple(DATASETS) + (tuple(ALIASES) if aliases else ())


def reader_class(name: str) -> type[DatasetReader]:
    """The reader of ``name``; an unknown name is an error that lists the valid ones."""
    cls = DATASETS.get(ALIASES.get(name, name))
    if cls is None:
        raise UserError(f"unknown dataset {name!r}; valid names: {', '.join(dataset_names())}")
    return cls


def open_dataset(name: str, root: str | os.PathLike[str], trial: int = 1) -> DatasetReader:
    """A reader of dataset ``name`` at ``root`` (the CSV for a manifest); ``trial`` for RegDB."""
    return reader_class(name)(root, trial)


def synthetic_names() -> tuple[str, ...]:
    """The datasets ``msareid synth`` can write."""
    return tuple(n for n, cls in DATASETS.items() if cls.write_synthetic.__func__ is not
                 DatasetReader.write_synthetic.__func__)


def rules_of(name: str) -> RankingRules:
    """The ranking rules of dataset ``name`` (``evaluate --features --protocol NAME``)."""
    return reader_class(name).rules


def directions() -> tuple[str, ...]:
    """Every evaluation direction any dataset knows (for validating ``eval.direction``)."""
    return tuple(dict.fromkeys(d for cls in DATASETS.values() for d in cls.directions))
