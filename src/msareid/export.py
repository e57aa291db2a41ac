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
    low, high = opset_range()
    if not low <= opset <= high:
        raise UserError(f"--opset {opset}: expected {low} to {high} (the opsets this exporter writes)")
    model, config, _ = load_trained(checkpoint, "cpu")
    images = torch.rand(2, 3, config.data.height, config.data.width, generator=torch.Generator().manual_seed(0))
    inputs, names = (images,), ["images"]
    module: nn.Module = _Embedder(model.embed).eval()
    if model.embed.two_stream:
        module = _TwoStreamEmbedder(model.embed).eval()
        inputs, names = (images, torch.tensor([0, 1])), ["images", "modality"]
    outputs = output_names(model.embed)
    axes = {name: {0: "batch"} for name in (*names, *outputs)}
    with atomic_path(out) as tmp, torch.no_grad():
        try:
            torch.onnx.export(module, inputs, str(tmp), input_names=names, output_names=outputs,
                              dynamic_axes=axes, opset_version=opset, dynamo=False)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise UserError(f"ONNX export at opset {opset} failed ({_first_line(exc)}); try the default, "
                            "--opset 17") from None
        _verify(tmp, module, inputs, names, outputs, opset)
    return Path(out)


def opset_range() -> tuple[int, int]:
    """The opsets the exporter writes a valid model at: 9 (the first with every operator F uses)
    up to the TorchScript exporter's newest."""
    try:
        from torch.onnx import _constants

        return 9, int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", _constants.ONNX_MAX_OPSET))
    except (ImportError, AttributeError):
        return 9, 20


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]


def _verify(path: Path, module: nn.Module, inputs: tuple[torch.Tensor, ...], names: list[str], outputs: list[str],
            opset: int) -> None:
    """The exported file passes the ONNX checker and, where ONNX Runtime is installed, gives
    PyTorch's outputs on the example inputs (within 1e-3); else a UserError, and nothing is written."""
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        raise UserError(f"the model exported at opset {opset} fails the ONNX checker ({_first_line(exc)}); "
                        "try the default, --opset 17") from None
    try:
        import onnxruntime
    except ImportError:
        return
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {n: x.numpy() for n, x in zip(names, inputs)})
    except Exception as exc:  # noqa: BLE001 - any runtime failure means an unusable file
        raise UserError(f"ONNX Runtime cannot run the model exported at opset {opset} ({_first_line(exc)}); "
                        "try the default, --opset 17") from None
    for name, mine, theirs in zip(outputs, module(*inputs), got):
        gap = float((mine - torch.from_numpy(theirs)).abs().max())
        if not gap <= 1e-3 * max(1.0, float(mine.abs().max())):
            raise UserError(f"the model exported at opset {opset} differs from PyTorch by {gap:.2e} ({name}); "
                            "nothing was written; try the default, --opset 17")
