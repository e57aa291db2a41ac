"""Export of the embedding net F to ONNX, with a dynamic batch size."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from msareid.errors import UserError
from msareid.fileio import atomic_path
from msareid.inference import load_trained
from msareid.models.embedding import Embeddings


def _outputs(out: Embeddings) -> tuple[torch.Tensor, ...]:
    """BNNeck and pooled features, then each feature head's (:func:`output_names`)."""
    return (out.bnneck, out.pooled, *out.extra.values())


def output_names(embed: nn.Module) -> list[str]:
    """The exported outputs: ``bnneck``, ``pooled``, then each feature head of F by name."""
    return ["bnneck", "pooled", *embed.feature_heads]


class _Embedder(nn.Module):
    """F at test time: images in, (BNNeck, pooled, each head's) features out."""

    def __init__(self, embed: nn.Module) -> None:
        super().__init__()
        self.embed = embed

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return _outputs(self.embed(images))


class _TwoStreamEmbedder(nn.Module):
    """A two-stream F at test time: images and their modalities (int64, RGB 0, IR 1) in. Each image
    goes through both stems and keeps its own modality's output (BatchNorm is per image at test
    time, so this equals routing), a graph without data-dependent indexing."""

    def __init__(self, embed: nn.Module) -> None:
        super().__init__()
        self.embed = embed

    def forward(self, images: torch.Tensor, modality: torch.Tensor) -> tuple[torch.Tensor, ...]:
        rgb, ir = (stem(images) for stem in self.embed.stems)
        maps = torch.where(modality.view(-1, 1, 1, 1) == 1, ir, rgb)
        return _outputs(self.embed.forward_head(self.embed.backbone(maps)))


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike, opset: int = 17) -> Path:
    """Write ``out`` (ONNX): input ``images`` N x 3 x H x W (and ``modality``, N int64, RGB 0 / IR 1,
    for a model with a stem for each modality), outputs ``bnneck``, ``pooled`` and each feature
    head's (e.g. ``part``, where a system made it the test feature)."""
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise UserError("ONNX export needs the onnx package: pip install 'msareid[export]'") from None
    model, config, _ = load_trained(checkpoint, "cpu")
    dummy = torch.zeros(2, 3, config.data.height, config.data.width)
    inputs, names = (dummy,), ["images"]
    module: nn.Module = _Embedder(model.embed).eval()
    if model.embed.two_stream:
        module = _TwoStreamEmbedder(model.embed).eval()
        inputs, names = (dummy, torch.tensor([0, 1])), ["images", "modality"]
    outputs = output_names(model.embed)
    axes = {name: {0: "batch"} for name in (*names, *outputs)}
    with atomic_path(out) as tmp, torch.no_grad():
        torch.onnx.export(module, inputs, str(tmp), input_names=names, output_names=outputs,
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
    return Path(out)
