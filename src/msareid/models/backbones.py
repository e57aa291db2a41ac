"""Backbones that map an image batch to feature maps: the ResNet-50 and DenseNet-121 of Table 4,
ResNet-18, and a tiny CNN that trains in minutes on a CPU.

Pretrained ImageNet weights come from torchvision's weights API (``pretrained = "imagenet"``) or a
local state-dict file (``pretrained = "/path/to/file.pth"``); ``"none"`` starts from random weights.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
import torchvision
from torch import nn

from msareid.errors import UserError

BACKBONES = ("resnet50", "densenet121", "resnet18", "tiny")


def _tiny() -> nn.Module:
    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return nn.Sequential(*block(3, 32, 2), *block(32, 64, 2), *block(64, 64, 1), *block(64, 128, 2),
                         *block(128, 256, 1))


def _weights_enum(name: str):
    return {
        "resnet50": torchvision.models.ResNet50_Weights.IMAGENET1K_V1,
        "resnet18": torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
        "densenet121": torchvision.models.DenseNet121_Weights.IMAGENET1K_V1,
    }[name]


def _imagenet_state(name: str) -> dict[str, torch.Tensor]:
    if name == "tiny":
        raise UserError("model.pretrained: the tiny backbone has no ImageNet weights; use pretrained = \"none\"")
    weights = _weights_enum(name)
    try:
        return weights.get_state_dict(progress=False)
    except Exception as exc:  # no network, proxy, corrupt cache: all say the same thing to the user
        raise UserError(
            f"could not download the ImageNet weights of {name} ({exc.__class__.__name__}: {exc}); download "
            f"{weights.url} on a machine with internet and pass it with --set model.pretrained=/path/to/file.pth, "
            "or train from scratch with --set model.pretrained=none"
        ) from None


def _file_state(path: str) -> dict[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise UserError(f"model.pretrained: {path} does not exist (expected \"imagenet\", \"none\" or a .pth file)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"model.pretrained: {path} is not a readable PyTorch state dict ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"model.pretrained: {path} holds a {type(state).__name__}, expected a state dict")
    return state


def _load(model: nn.Module, state: dict[str, torch.Tensor], source: str, head: str | None) -> None:
    """Load ``state`` into ``model``, ignoring the ImageNet classifier whose keys start with ``head``."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if head:
        state = {k: v for k, v in state.items() if not k.startswith(head)}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).strip().splitlines()[-1].strip()
        raise UserError(f"{source} does not fit this backbone: {first}") from None
    missing = [k for k in missing if not (head and k.startswith(head))]
    if missing or unexpected:
        raise UserError(f"{source} does not fit this backbone: missing {missing[:3]}, unexpected {unexpected[:3]}")


_BUILDERS: dict[str, tuple[Callable[[], nn.Module], str]] = {
    "resnet50": (lambda: torchvision.models.resnet50(weights=None), "fc."),
    "resnet18": (lambda: torchvision.models.resnet18(weights=None), "fc."),
    "densenet121": (lambda: torchvision.models.densenet121(weights=None), "classifier."),
}


def build_backbone(name: str, pretrained: str = "none", last_stride: int = 1) -> tuple[nn.Module, int]:
    """A module mapping (B, 3, H, W) images to (B, C, h, w) maps, and C.

    ResNets use ``last_stride`` in their last stage (1 in the paper, section 4.1: the ResNet-50
    v1.5 stride sits in the 3x3 convolution and the shortcut); DenseNet-121 keeps its own strides.
    """
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}")
    if name == "tiny":
        body = _tiny()
        if pretrained == "imagenet":
            _imagenet_state(name)  # explains that there are none
        elif pretrained != "none":
            _load(body, _file_state(pretrained), pretrained, head=None)
        return body, 256
    build, head = _BUILDERS[name]
    model = build()
    if pretrained == "imagenet":
        _load(model, _imagenet_state(name), f"the ImageNet weights of {name}", head)
    elif pretrained != "none":
        _load(model, _file_state(pretrained), pretrained, head)
    if name.startswith("resnet"):
        block = model.layer4[0]
        (block.conv2 if hasattr(block, "conv3") else block.conv1).stride = (last_stride, last_stride)
        block.downsample[0].stride = (last_stride, last_stride)
        body = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool,
                             model.layer1, model.layer2, model.layer3, model.layer4)
        return body, model.fc.in_features
    return nn.Sequential(model.features, nn.ReLU(inplace=True)), model.classifier.in_features
