"""The one interface every dataset reader implements, and what it hands to the rest of the tool.

A reader is built from a root (and a trial, for datasets split in trials) and answers:

* :meth:`DatasetReader.train`: the RGB and IR training records;
* :meth:`DatasetReader.test_runs`: the test runs of a protocol, one query and one gallery a trial
  and direction, exactly as the dataset's reference code builds them;
* :attr:`DatasetReader.rules`: how a ranking is scored (:class:`~msareid.rules.RankingRules`);
* :meth:`DatasetReader.summary`: the ``check-data`` object;
* class facts: the image size of its reference code, the evaluation directions, the number of
  training identities of the real dataset, and the synthetic writer of ``msareid synth``.

The mapping from name to reader is :data:`msareid.data.datasets.DATASETS`.
"""

from __future__ import annotations

import argparse
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from msareid.data.records import Record
from msareid.errors import UserError, warn
from msareid.rules import STANDARD, RankingRules


@dataclass(frozen=True)
class TestSettings:
    """The protocol choices a reader needs to build its test runs (a subset of ``[eval]``).

    ``direction`` empty means the reader's default (its first direction); ``perm`` is the path of
    SYSU-MM01's ``rand_perm_cam.mat`` for the official sampler.
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    mode: str = "all"
    shots: int = 1
    trials: int = 10
    sampler: str = "agw"
    perm: str = ""
    direction: str = ""

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The names of the settings (what ``[eval]`` passes on)."""
        return tuple(cls.__dataclass_fields__)

    @classmethod
    def of(cls, protocol: object) -> TestSettings:
        """The settings of an ``[eval]`` section (any object with these attributes)."""
        return cls(**{k: getattr(protocol, k) for k in cls.fields()})


DEFAULT_SETTINGS = TestSettings()


@dataclass(frozen=True)
class TestRun:
    """One query set against one gallery: a trial of a protocol in one direction.

    ``transposed`` says the run is scored the other way round, the gallery's images as queries
    against the query set (LLCM's visible-to-infrared evaluation in its reference code); counts
    of ``check-data`` and the report still name the sets as the reference code builds them.
    """

    __test__ = False

    name: str
    query: list[Record]
    gallery: list[Record]
    transposed: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def scored(self) -> tuple[list[Record], list[Record]]:
        """(queries, gallery) in the order the metrics rank them."""
        return (self.gallery, self.query) if self.transposed else (self.query, self.gallery)


class DatasetReader(ABC):
    """A dataset on disk behind the interface the whole tool reads (see the module docstring)."""

    name: ClassVar[str]
    title: ClassVar[str]  # e.g. "SYSU-MM01", for messages and reports
    rules: ClassVar[RankingRules] = STANDARD
    image_size: ClassVar[tuple[int, int]] = (288, 144)  # H x W of its reference code
    directions: ClassVar[tuple[str, ...]] = ()  # evaluation directions, the default first
    num_classes: ClassVar[int | None] = None  # training identities of the real dataset
    root_help: ClassVar[str] = "dataset root folder"
    synth_ir_cameras: ClassVar[tuple[str, ...]] = ()  # camera models `synth --ir-camera` offers (none: its own)

    def __init__(self, root: str | os.PathLike[str], trial: int = 1) -> None:
        self.root = Path(root)
        self.trial = trial

    @abstractmethod
    def train(self) -> tuple[list[Record], list[Record]]:
        """RGB and IR training records."""

    @abstractmethod
    def test_runs(self, settings: TestSettings = DEFAULT_SETTINGS) -> list[TestRun]:
        """The runs of the test protocol ``settings`` asks for, in trial order."""

    @abstractmethod
    def summary(self, verify: bool = False) -> dict[str, Any]:
        """The ``check-data --json`` object; ``verify`` also decodes every image."""

    def protocol_name(self, settings: TestSettings = DEFAULT_SETTINGS) -> str:
        """The protocol's name in results, e.g. ``sysu/all/single-shot/agw``."""
        return self.name

    def test_images(self, settings: TestSettings = DEFAULT_SETTINGS) -> list[Record]:
        """Every image whose feature the runs of ``settings`` need, each once, in first-use order."""
        seen: dict[str, Record] = {}
        for run in self.test_runs(settings):
            for r in run.query + run.gallery:
                seen.setdefault(r.path, r)
        return list(seen.values())

    @classmethod
    def check_settings(cls, settings: TestSettings) -> None:
        """Refuse protocol settings this dataset cannot evaluate, with one line (called when a config
        is read, so that nothing trains under a protocol evaluation would then refuse)."""
        if cls.directions and settings.direction and settings.direction not in cls.directions:
            raise UserError(f"{cls.title} evaluates in the directions {', '.join(cls.directions)}; "
                            f"got eval.direction = {settings.direction!r}")

    def direction(self, settings: TestSettings) -> str:
        """The direction of ``settings`` (the default one when empty), checked."""
        if not self.directions:
            return ""
        chosen = settings.direction or self.directions[0]
        if chosen not in self.directions:
            raise UserError(f"{self.title} evaluates in the directions {', '.join(self.directions)}; "
                            f"got eval.direction = {chosen!r}")
        return chosen

    @classmethod
    def add_synth_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Options of ``msareid synth <name>`` beyond --out, --ids, --seed and --workers (none here)."""
        return None

    @classmethod
    def write_synthetic(cls, out: Path, ids: int, seed: int, workers: int, args: argparse.Namespace) -> Path:
        """Write a deterministic synthetic dataset in this layout; returns its root."""
        raise UserError(f"{cls.name} has no synthetic form; synth writes "
                        "a layout of a benchmark (see msareid synth --help)")


def verify_images(records: Iterable[Record]) -> int:
    """Decode every image fully; raises naming the first one that fails. Returns the count."""
    from PIL import Image

    n = 0
    for r in records:
        try:
            with Image.open(r.path) as img:
                img.load()
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise UserError(f"image {r.path} cannot be decoded ({exc.__class__.__name__}: {exc})") from None
        n += 1
    return n


def format_summary(summary: dict[str, Any]) -> str:
    """A human-readable rendering of a summary dict."""
    lines = [f"dataset: {summary['dataset']}" + (f" (trial {summary['trial']})" if "trial" in summary else "")]

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            lines.append(f"  {prefix:<34} {value:>8,}")

    walk("", {k: v for k, v in summary.items() if k not in ("dataset", "trial")})
    return "\n".join(lines)


def read_id_file(path: Path) -> list[int]:
    """Parse an id file (SYSU-MM01's ``exp/*_id.txt``, LLCM's ``idx/test_id.txt``): one line of
    comma-separated integer ids; an id given twice is kept once, with a warning."""
    if not path.is_file():
        raise UserError(f"{path} is missing: expected one line of comma-separated person ids")
    text = path.read_text(encoding="utf-8-sig").strip()
    first = text.splitlines()[0] if text else ""
    try:
        ids = [int(tok) for tok in first.split(",") if tok.strip()]
    except ValueError:
        raise UserError(
            f"{path}: expected comma-separated integer ids on the first line, got {first[:60]!r}"
        ) from None
    if not ids:
        raise UserError(f"{path} lists no ids: expected one line of comma-separated person ids")
    unique = list(dict.fromkeys(ids))
    if len(unique) < len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        warn(f"{path}: {len(ids) - len(unique)} repeated id(s) kept once ({', '.join(map(str, repeated[:5]))})")
    return unique


def check_label_list(path: Path, images: list[str], labels: list[int], folders: list[str]) -> list[int]:
    """The rows of a ``<path> <label>`` list file to keep, with a warning for what looks wrong: an
    image listed twice (kept once), and a label column that contradicts the folders (one folder's
    images under two labels, or one label over two folders)."""
    keep, seen, repeated = [], set(), 0
    for i, image in enumerate(images):
        if image in seen:
            repeated += 1
            continue
        seen.add(image)
        keep.append(i)
    if repeated:
        warn(f"{path}: {repeated} image(s) listed twice, kept once")
    label_of: dict[str, int] = {}
    folder_of: dict[int, str] = {}
    contradictions = []
    for i in keep:
        folder, label = folders[i], labels[i]
        if label_of.setdefault(folder, label) != label or folder_of.setdefault(label, folder) != folder:
            contradictions.append(f"{images[i]} has label {label}")
    if contradictions:
        warn(f"{path}: {len(contradictions)} label(s) contradict the folders (one folder, one label expected), "
             f"e.g. {contradictions[0]}")
    return keep
