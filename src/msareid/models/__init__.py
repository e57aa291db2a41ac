"""Models: backbones, the embedding net F with BNNeck, and the image style adapters (ISA).

This package never imports :mod:`msareid.data`.
"""

from msareid.models.embedding import EmbeddingNet, Embeddings
from msareid.models.msa import MSANet
from msareid.models.style import StyleAdapter

__all__ = ["Embeddings", "EmbeddingNet", "MSANet", "StyleAdapter"]
