"""Datasets: on-disk readers producing plain records, synthetic data, cache, sampler, transforms.

This package never imports :mod:`msareid.models`.
"""

from msareid.data.records import Modality, Record

__all__ = ["Modality", "Record"]
