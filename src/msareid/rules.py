"""The ranking rules of a benchmark, as one value that dataset readers give and metrics take.

Every benchmark ranks a gallery for each query the same way (similarity, ties by gallery index);
they differ in four choices, named here once:

* ``metric``: ``cosine`` (L2-normalised features, the default) or ``euclidean``;
* ``cmc``: ``identity`` keeps only the first occurrence of each gallery identity before the
  cumulative match (SYSU-MM01, LLCM); ``image`` is the standard cumulative match (RegDB);
* which gallery images a query may not see: ``excluded_cameras`` pairs ``(query camera, gallery
  camera)`` removed whatever the identity (SYSU-MM01: a cam3 query never sees cam2, same place),
  and ``same_camera_same_id`` removes the images of the query's own identity and camera (LLCM);
* ``max_rank``: the length of the CMC curve.

This module imports nothing but the standard library, so readers and metrics can share it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

METRICS = ("cosine", "euclidean")
CMC_STYLES = ("identity", "image")


@dataclass(frozen=True)
class RankingRules:
    """How one benchmark scores a ranking (see the module docstring)."""

    name: str = "standard"
    metric: str = "cosine"
    cmc: str = "image"
    excluded_cameras: tuple[tuple[int, int], ...] = ()
    same_camera_same_id: bool = False
    max_rank: int = 20

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if self.cmc not in CMC_STYLES:
            raise ValueError(f"cmc must be one of {CMC_STYLES}, got {self.cmc!r}")
        if self.max_rank < 1:
            raise ValueError(f"max_rank must be positive, got {self.max_rank}")
        object.__setattr__(self, "excluded_cameras", tuple((int(a), int(b)) for a, b in self.excluded_cameras))

    def with_metric(self, metric: str) -> RankingRules:
        """The same rules ranked by ``metric``."""
        return dataclasses.replace(self, metric=metric)

    def describe(self) -> dict[str, object]:
        """The JSON form, as results name the rules they were scored with."""
        return {"rules": self.name, "metric": self.metric, "cmc": self.cmc,
                "excluded_cameras": [list(p) for p in self.excluded_cameras],
                "same_camera_same_id": self.same_camera_same_id}


STANDARD = RankingRules()  # standard CMC, no exclusion: what a manifest is scored with
