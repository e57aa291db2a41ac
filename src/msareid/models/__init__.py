"""Models: backbones, the embedding net F with BNNeck, and the image style adapters (ISA).

This package never imports :mod:`msareid.data` (nor any higher layer). Its classes are imported on first use, so that
reading :data:`msareid.models.backbones.BACKBONES` (config validation) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"Embeddings": "embedding", "EmbeddingNet": "embedding", "MSANet": "msa", "StyleAdapter": "style"}
__all__ = ["Embeddings", "EmbeddingNet", "MSANet", "StyleAdapter"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"msareid.models.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'msareid.models' has no attribute {name!r}")
