"""Backbones that map an image batch to feature maps: the ResNet-50 and DenseNet-121 of Table 4,
ResNet-18, and a tiny CNN that trains in minutes on a CPU.

Each backbone is one entry of :data:`BACKBONES`: how to make the network (random weights), the
torchvision weights of its ImageNet training, the prefix of its ImageNet classifier, and how to
cut the feature-map body out of it. Adding one is adding an entry (docs/design.md, "A backbone").

Pretrained ImageNet weights come from torchvision's weights API (``pretrained = "imagenet"``) or a
local state-dict file (``pretrained = "/path/to/file.pth"``); ``"none"`` starts from random weights.
Torch is imported when a backbone is built, so the names can be read (config validation) without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from msareid.errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn


Site = tuple["nn.Sequential", int, int]  # (container, index of a module in it, channels of its output)


@dataclass(frozen=True)
class Backbone:
    """One backbone: ``make()`` builds the whole network with random weights; ``body(net,
    last_stride)`` returns the feature-map module and its channels; ``imagenet`` names the
    torchvision weights (``"ResNet50_Weights.IMAGENET1K_V1"``, empty: none); ``head`` is the key
    prefix of the ImageNet classifier, left out when weights are loaded. ``stem`` and ``stages``
    say where a two-stream F's stems and the non-local blocks go; a backbone
    without them does not offer those options."""

    make: Callable[[], nn.Module]
    body: Callable[[nn.Module, int], tuple[nn.Module, int]]
    imagenet: str = ""
    head: str | None = None
    stem: int = 0  # leading modules of the body that form its stem (the two-stream split); 0: none
    stages: Callable[[nn.Sequential], list[list[Site]]] | None = None  # where non-local blocks may go



def _torchvision(arch: str) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        import torchvision

        return getattr(torchvision.models, arch)(weights=None)

    return make


def _resnet_body(net: Any, last_stride: int) -> tuple[nn.Module, int]:
    """Everything before the pooling; ``last_stride`` in the last stage (1 in the paper, section
    4.1: the ResNet v1.5 stride sits in the 3x3 convolution and the shortcut)."""
    from torch import nn

    block = net.layer4[0]
    (block.conv2 if hasattr(block, "conv3") else block.conv1).stride = (last_stride, last_stride)
    block.downsample[0].stride = (last_stride, last_stride)
    body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
    return body, net.fc.in_features


def _resnet_stages(body: nn.Sequential) -> list[list[Site]]:
    """The blocks of layer1..layer4, each with its output channels."""
    stages = []
    for layer in list(body)[4:8]:
        stages.append([(layer, i, _out_channels(block)) for i, block in enumerate(layer)])
    return stages


def _out_channels(module: nn.Module) -> int:
    """Channels of the last convolution of ``module`` (a residual block's output)."""
    convs = [m for m in module.modules() if hasattr(m, "out_channels") and m.__class__.__name__ == "Conv2d"]
    return int(convs[-1].out_channels)


def _densenet_body(net: Any, last_stride: int) -> tuple[nn.Module, int]:
    """The dense blocks and the final ReLU; DenseNet keeps its own strides."""
    from torch import nn

    return nn.Sequential(net.features, nn.ReLU(inplace=True)), net.classifier.in_features


def _tiny() -> nn.Module:
    from torch import nn

    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return nn.Sequential(*block(3, 32, 2), *block(32, 64, 2), *block(64, 64, 1), *block(64, 128, 2),
                         *block(128, 256, 1))


def _tiny_stages(body: nn.Sequential) -> list[list[Site]]:
    """The tiny CNN's stem is its first conv-BN-ReLU; its other four blocks are four one-block
    stages, each site the ReLU that closes a block."""
    return [[(body, 3 * k + 2, _out_channels(body[3 * k]))] for k in range(1, 5)]


def _whole(net: nn.Module, last_stride: int) -> tuple[nn.Module, int]:
    """The network is the body; its channels are those of its last convolution."""
    convs = [m for m in net.modules() if hasattr(m, "out_channels")]
    return net, int(convs[-1].out_channels)


BACKBONES: dict[str, Backbone] = {
    "resnet50": Backbone(_torchvision("resnet50"), _resnet_body, "ResNet50_Weights.IMAGENET1K_V1", "fc.",
                         stem=4, stages=_resnet_stages),
    "densenet121": Backbone(_torchvision("densenet121"), _densenet_body, "DenseNet121_Weights.IMAGENET1K_V1",
                            "classifier."),
    "resnet18": Backbone(_torchvision("resnet18"), _resnet_body, "ResNet18_Weights.IMAGENET1K_V1", "fc.",
                         stem=4, stages=_resnet_stages),
    "tiny": Backbone(_tiny, _whole, stem=3, stages=_tiny_stages),
}


def _weights_enum(name: str) -> Any:
    import torchvision

    cls, member = BACKBONES[name].imagenet.split(".")
    return getattr(getattr(torchvision.models, cls), member)


def _imagenet_state(name: str) -> dict[str, torch.Tensor]:
    if not BACKBONES[name].imagenet:
        raise UserError(f"model.pretrained: the {name} backbone has no ImageNet weights; use pretrained = \"none\"")
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
    from msareid.fileio import load_torch

    if not os.path.isfile(path):
        raise UserError(f"model.pretrained: {path} does not exist (expected \"imagenet\", \"none\" or a .pth file)")
    state = load_torch(path, "model.pretrained:")
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


def build_backbone(name: str, pretrained: str = "none", last_stride: int = 1) -> tuple[nn.Module, int]:
    """A module mapping (B, 3, H, W) images to (B, C, h, w) maps, and C (see :class:`Backbone`)."""
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {tuple(BACKBONES)}, got {name!r}")
    spec = BACKBONES[name]
    net = spec.make()
    if pretrained == "imagenet":
        _load(net, _imagenet_state(name), f"the ImageNet weights of {name}", spec.head)
    elif pretrained != "none":
        _load(net, _file_state(pretrained), pretrained, spec.head)
    return spec.body(net, last_stride)
