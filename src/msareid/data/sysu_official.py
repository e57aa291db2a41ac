"""The SYSU-MM01 authors' evaluation files: ``rand_perm_cam.mat`` and ``test_id.mat``.

``rand_perm_cam`` is a 6x1 MATLAB cell, one per camera, of per-person cells:
``rand_perm_cam{cam}{id}(run, :)`` is a 1-based permutation of the images of folder
``cam<cam>/<id:04d>`` (sorted by name) for each of the 10 runs; the gallery of run ``r`` takes its
first N entries (N = 1 single-shot, 10 multi-shot).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from msareid.errors import UserError


def load_mat_variable(path: Path, variable: str) -> np.ndarray:
    """One variable of a MATLAB file; a missing file or variable is a :class:`UserError`."""
    import scipy.io

    if not path.is_file():
        raise UserError(f"{path} does not exist: expected a MATLAB file with variable '{variable}'")
    try:
        content = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types for corrupt files
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:160]
        raise UserError(f"{path} is not a readable MATLAB .mat file ({first})") from exc
    if variable not in content:
        found = sorted(k for k in content if not k.startswith("__"))
        raise UserError(f"{path} has no variable '{variable}' (found: {', '.join(found) or 'none'})")
    return content[variable]


class RandPerm:
    """The authors' fixed gallery permutations, indexed by camera (1..6) and person id (1-based)."""

    def __init__(self, cells: np.ndarray, source: str = "rand_perm_cam") -> None:
        cams = np.asarray(cells, dtype=object).reshape(-1)
        if cams.size != 6:
            raise UserError(f"{source}: expected a 6x1 cell (one per camera), got {cells.shape}")
        self._cams = [np.asarray(c, dtype=object).reshape(-1) for c in cams]
        self.source = source

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RandPerm:
        """Read ``rand_perm_cam.mat`` (variable ``rand_perm_cam``)."""
        return cls(load_mat_variable(Path(path), "rand_perm_cam"), source=str(path))

    def indices(self, camera: int, pid: int, run: int, shots: int, n_files: int) -> list[int]:
        """0-based indices of the first ``shots`` images of ``run`` for folder (camera, pid)."""
        per_id = self._cams[camera - 1]
        if pid > per_id.size:
            raise UserError(f"{self.source}: camera {camera} has no entry for person id {pid}")
        table = np.asarray(per_id[pid - 1])
        if table.ndim != 2 or table.shape[0] <= run:
            raise UserError(
                f"{self.source}: rand_perm_cam{{{camera}}}{{{pid}}} should have >= {run + 1} rows "
                f"(one permutation per run), got shape {table.shape}"
            )
        row = table[run, : min(shots, table.shape[1])].astype(np.int64) - 1
        if row.size and (row.min() < 0 or row.max() >= n_files):
            raise UserError(
                f"{self.source}: rand_perm_cam{{{camera}}}{{{pid}}} indexes image {row.max() + 1} "
                f"but cam{camera}/{pid:04d} holds {n_files} images"
            )
        return row.tolist()


def load_test_ids(path: str | os.PathLike[str]) -> list[int]:
    """Read the authors' ``test_id.mat`` (variable ``id``): the 96 test person ids."""
    ids = load_mat_variable(Path(path), "id")
    return sorted(int(v) for v in np.asarray(ids).reshape(-1))
