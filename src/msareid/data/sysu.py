"""SYSU-MM01 on disk: ``cam1..cam6/<PPPP>/<NNNN>.jpg`` and ``exp/{train,val,test}_id.txt``.

The reader turns the layout into :class:`Record` lists and reproduces the evaluation protocol of
the reference code: query = every IR image (cams 3, 6) of the test ids; gallery per trial drawn
from the RGB cameras (all-search 1, 2, 4, 5; indoor-search 1, 2) by one of two samplers:

* ``agw``: trial ``t`` seeds ``random.Random(t)`` and, for each test id in ascending order and each
  gallery camera in order, draws ``choice`` (single-shot) or ``sample(files, min(10, n))``
  (multi-shot) over the sorted file list. ``random.Random(t)`` yields the same draws as the
  reference code's ``random.seed(t)`` without touching the global generator.
* ``official``: the dataset authors' ``rand_perm_cam.mat`` permutations (see :mod:`.sysu_official`).
"""

from __future__ import annotations

import argparse
import os
import random
from functools import cache
from pathlib import Path
from typing import Any

from msareid.argtypes import positive_int
from msareid.data.base import DEFAULT_SETTINGS, DatasetReader, TestRun, TestSettings, read_id_file, verify_images
from msareid.data.records import Modality, Record, count_ids
from msareid.data.sysu_official import RandPerm
from msareid.errors import UserError, warn
from msareid.rules import RankingRules

RGB_CAMERAS = (1, 2, 4, 5)
IR_CAMERAS = (3, 6)
GALLERY_CAMERAS = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
SAMPLERS = ("agw", "official")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
SPLITS = ("train", "val", "test")


def modality_of_camera(camera: int) -> Modality:
    """SYSU-MM01 cameras 3 and 6 are infrared, the others RGB."""
    return Modality.IR if camera in IR_CAMERAS else Modality.RGB


class SysuMM01(DatasetReader):
    """Reader of a SYSU-MM01 root; every path is checked when first needed, failing fast."""

    name = "sysu"
    title = "SYSU-MM01"
    rules = RankingRules("sysu", cmc="identity", excluded_cameras=((3, 2),))  # cam3 never sees cam2
    image_size = (288, 144)
    num_classes = 395

    def __init__(self, root: str | os.PathLike[str], trial: int = 1) -> None:
        super().__init__(root, trial)
        if not self.root.is_dir():
            raise UserError(f"SYSU-MM01 root {self.root} does not exist or is not a folder")
        for cam in RGB_CAMERAS + IR_CAMERAS:
            if not (self.root / f"cam{cam}").is_dir():
                raise UserError(
                    f"{self.root / f'cam{cam}'} is missing: a SYSU-MM01 root holds cam1..cam6 and exp/"
                )
        self._present = {
            cam: {int(n) for n in os.listdir(self.root / f"cam{cam}") if n.isdigit()}
            for cam in RGB_CAMERAS + IR_CAMERAS
        }

    def ids(self, split: str) -> list[int]:
        """Person ids of ``exp/{split}_id.txt`` (split is train, val or test), ascending."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return sorted(read_id_file(self.root / "exp" / f"{split}_id.txt"))

    @cache  # noqa: B019 - one reader per root, the cache lives as long as it
    def files(self, camera: int, pid: int) -> tuple[str, ...]:
        """Sorted image paths of ``cam<camera>/<pid:04d>``; empty when the folder does not exist."""
        if pid not in self._present[camera]:
            return ()
        folder = self.root / f"cam{camera}" / f"{pid:04d}"
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_SUFFIXES))
        if not names:
            raise UserError(f"{folder} holds no images: expected files like 0001.jpg")
        return tuple(str(folder / n) for n in names)

    def records(self, pids: list[int], cameras: tuple[int, ...]) -> list[Record]:
        """Every image of ``pids`` in ``cameras``, id by id, camera by camera, files sorted."""
        out = []
        for pid in pids:
            for cam in cameras:
                mod = modality_of_camera(cam)
                out.extend(Record(p, pid, cam, mod) for p in self.files(cam, pid))
        return out

    def train(self) -> tuple[list[Record], list[Record]]:
        """RGB and IR training records of the train+val ids (395 ids in the real dataset)."""
        pids = sorted(set(self.ids("train")) | set(self.ids("val")))
        overlap = sorted(set(pids) & set(self.ids("test")))
        if overlap:
            warn(f"{self.root / 'exp'}: {len(overlap)} id(s) are in both the training and the test split "
                 f"(e.g. {', '.join(map(str, overlap[:5]))}); test figures of such a model are not comparable")
        for pid in pids:
            for name, cams in (("RGB", RGB_CAMERAS), ("IR", IR_CAMERAS)):
                if not any(self.files(c, pid) for c in cams):
                    folders = ", ".join(f"cam{c}/{pid:04d}" for c in cams)
                    raise UserError(
                        f"training id {pid} of {self.root / 'exp'} has no {name} images: "
                        f"expected at least one of {folders}"
                    )
        return self.records(pids, RGB_CAMERAS), self.records(pids, IR_CAMERAS)

    def test_ids(self, test_ids: list[int] | None = None) -> list[int]:
        """The test ids: ``exp/test_id.txt``, or ``test_ids`` (e.g. from ``test_id.mat``)."""
        pids = sorted(test_ids) if test_ids is not None else self.ids("test")
        for pid in pids:
            if not any(pid in self._present[c] for c in RGB_CAMERAS + IR_CAMERAS):
                raise UserError(f"test id {pid} has no folder in {self.root}/cam1..cam6")
        return pids

    def query(self, test_ids: list[int] | None = None) -> list[Record]:
        """Every IR image of the test ids, cam3 then cam6 for each id in ascending order."""
        return self.records(self.test_ids(test_ids), IR_CAMERAS)

    def gallery(
        self,
        mode: str = "all",
        shots: int = 1,
        trial: int = 0,
        sampler: str = "agw",
        perm: RandPerm | None = None,
        test_ids: list[int] | None = None,
    ) -> list[Record]:
        """The RGB gallery of one trial: ``shots`` images (1 or 10) per (id, camera)."""
        if mode not in GALLERY_CAMERAS:
            raise ValueError(f"mode must be one of {tuple(GALLERY_CAMERAS)}, got {mode!r}")
        if shots not in (1, 10):
            raise ValueError(f"shots must be 1 (single-shot) or 10 (multi-shot), got {shots}")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if sampler == "official" and perm is None:
            raise ValueError("the official sampler needs the rand_perm_cam.mat permutations")
        rng = random.Random(trial)
        out = []
        for pid in self.test_ids(test_ids):
            for cam in GALLERY_CAMERAS[mode]:
                files = self.files(cam, pid)
                if not files:
                    continue
                if sampler == "agw":
                    chosen = [rng.choice(files)] if shots == 1 else rng.sample(files, min(10, len(files)))
                else:
                    assert perm is not None
                    chosen = [files[i] for i in perm.indices(cam, pid, trial, shots, len(files))]
                out.extend(Record(p, pid, cam, Modality.RGB) for p in chosen)
        return out

    def protocol_name(self, settings: TestSettings = DEFAULT_SETTINGS) -> str:
        shot = "single-shot" if settings.shots == 1 else "multi-shot"
        return f"sysu/{settings.mode}/{shot}/{settings.sampler}"

    @classmethod
    def check_settings(cls, settings: TestSettings) -> None:
        super().check_settings(settings)
        if settings.sampler == "official" and not settings.perm:
            raise UserError("eval.sampler = official needs eval.perm = path/to/rand_perm_cam.mat (--perm)")

    def test_runs(self, settings: TestSettings = DEFAULT_SETTINGS, test_ids: list[int] | None = None,
                  perm: RandPerm | None = None) -> list[TestRun]:
        """One run a trial: the shared IR query against that trial's RGB gallery.

        ``perm`` (else ``settings.perm``, loaded) gives the official sampler's permutations;
        ``test_ids`` replaces ``exp/test_id.txt`` (e.g. the authors' ``test_id.mat``).
        """
        if settings.mode not in GALLERY_CAMERAS:
            raise UserError(f"SYSU-MM01 search mode must be one of {', '.join(GALLERY_CAMERAS)}, got {settings.mode!r}")
        if not 1 <= settings.trials <= 10:
            raise UserError(f"SYSU-MM01 has 10 trials; eval.trials must be 1..10, got {settings.trials}")
        if settings.sampler == "official" and perm is None:
            if not settings.perm:  # (check_settings refuses this when a config is read)
                raise UserError("eval.sampler = official needs eval.perm = path/to/rand_perm_cam.mat (--perm)")
            perm = RandPerm.load(settings.perm)
        query = self.query(test_ids)
        return [TestRun(f"trial {t}", query,
                        self.gallery(settings.mode, settings.shots, t, settings.sampler, perm, test_ids),
                        details={"trial": t, "sampler": settings.sampler}) for t in range(settings.trials)]

    def summary(self, verify: bool = False) -> dict[str, Any]:
        """Training and test counts for every gallery mode (the ``check-data sysu --json`` object)."""
        rgb, ir = self.train()
        query = self.query()
        gallery: dict[str, dict[str, int]] = {}
        valid: dict[str, int] = {}
        for mode in GALLERY_CAMERAS:
            single = self.gallery(mode, shots=1, trial=0)
            multi = self.gallery(mode, shots=10, trial=0)
            gallery[mode] = {"single": len(single), "multi": len(multi)}
            in_gallery = {r.pid for r in single}
            valid[mode] = sum(r.pid in in_gallery for r in query)
        if verify:
            verify_images(rgb + ir + query + self.records(self.test_ids(), RGB_CAMERAS))
        return {
            "dataset": "sysu",
            "train": {"ids": count_ids(rgb + ir), "rgb": len(rgb), "ir": len(ir)},
            "test": {"ids": len(self.test_ids()), "query": len(query), "gallery": gallery},
            "valid_query": valid,
        }

    synth_ir_cameras = ("nir", "thermal")  # msareid.data.synthetic.IR_CAMERAS

    @classmethod
    def add_synth_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--rgb-images", type=positive_int, default=8, help="SYSU: images per (id, RGB camera), +-2")
        parser.add_argument("--ir-images", type=positive_int, default=8, help="SYSU: images per (id, IR camera), +-2")
        parser.add_argument("--frame-height", type=positive_int, default=128,
                            help="SYSU: typical frame height in pixels")
        parser.add_argument("--ir-camera", choices=cls.synth_ir_cameras, default=None,
                            help="SYSU: camera model of the IR cameras 3 and 6: nir (default; reflected light of an "
                                 "IR lamp, as SYSU-MM01's) or thermal (emitted heat, as RegDB's)")

    @classmethod
    def write_synthetic(cls, out: Path, ids: int, seed: int, workers: int, args: argparse.Namespace) -> Path:
        from msareid.data.synthetic import SysuSpec, write_sysu

        spec = SysuSpec(ids=ids, rgb_images=getattr(args, "rgb_images", 8), ir_images=getattr(args, "ir_images", 8),
                        seed=seed, frame_height=getattr(args, "frame_height", 128),
                        ir_camera=getattr(args, "ir_camera", None) or "nir")
        return write_sysu(out, spec, workers=workers)
