"""Export of the embedding net F to ONNX, with a dynamic batch size."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from msareid.errors import UserError
from msareid.fileio import atomic_path
from msareid.models.trained import load_trained


class _Embedder(nn.Module):
    """F at test time: images in, (BNNeck, pooled) features out."""

    def __init__(self, embed: nn.Module) -> None:
        super().__init__()
        self.embed = embed

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.embed(images)
        return out.bnneck, out.pooled


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike, opset: int = 17) -> Path:
    """Write ``out`` (ONNX): input ``images`` N x 3 x H x W, outputs ``bnneck`` and ``pooled``."""
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise UserError("ONNX export needs the onnx package: pip install 'msareid[export]'") from None
    model, config, _ = load_trained(checkpoint, "cpu")
    module = _Embedder(model.embed).eval()
    dummy = torch.zeros(2, 3, config.data.height, config.data.width)
    with atomic_path(out) as tmp, torch.no_grad():
        torch.onnx.export(module, (dummy,), str(tmp), input_names=["images"], output_names=["bnneck", "pooled"],
                          dynamic_axes={"images": {0: "batch"}, "bnneck": {0: "batch"}, "pooled": {0: "batch"}},
                          opset_version=opset, dynamo=False)
    return Path(out)
