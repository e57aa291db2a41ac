"""Embedding net levels, ISA, backbones, pretrained weights, the objective and its ablations."""

import urllib.error

import pytest
import torch
import torchvision

from msareid.config import LossConfig
from msareid.errors import UserError
from msareid.models import EmbeddingNet, MSANet, StyleAdapter
from msareid.models.backbones import build_backbone
from msareid.recipes import load_config
from msareid.systems.base import Batch
from msareid.systems.network import build_model
from msareid.systems.objective import msa_losses


def _tiny_msa(r2i: bool = True, i2r: bool = True, classes: int = 5) -> MSANet:
    return MSANet(EmbeddingNet("tiny", classes), r2i=r2i, i2r=i2r)


def _batch(ids: int = 3, k: int = 2, h: int = 32, w: int = 16):
    torch.manual_seed(0)
    labels = torch.arange(ids).repeat_interleave(k)
    return torch.randn(ids * k, 3, h, w), torch.randn(ids * k, 3, h, w), labels


def test_three_levels_of_the_embedding_net() -> None:
    net = EmbeddingNet("tiny", num_classes=7).eval()
    x = torch.randn(2, 3, 32, 16)
    maps = net.forward_features(x)
    assert maps.shape[:2] == (2, 256)
    out = net(x)
    assert out.pooled.shape == out.bnneck.shape == (2, 256) and out.logits.shape == (2, 7)
    assert torch.allclose(out.pooled, maps.mean(dim=(2, 3)), atol=1e-6)
    assert not net.bnneck.bias.requires_grad and net.classifier.bias is None


@pytest.mark.parametrize(("size", "maps"), [((64, 32), (4, 2)), ((288, 144), (18, 9))])
def test_resnet50_last_stride_one(size, maps) -> None:
    body, dim = build_backbone("resnet50", last_stride=1)
    with torch.no_grad():
        out = body.eval()(torch.zeros(1, 3, *size))
    assert dim == 2048 and out.shape[-2:] == maps  # stride 16 instead of 32


def test_densenet121_and_resnet18_build() -> None:
    for name, dim in (("densenet121", 1024), ("resnet18", 512)):
        body, d = build_backbone(name)
        with torch.no_grad():
            assert d == dim and body.eval()(torch.zeros(1, 3, 64, 32)).shape[1] == dim


@pytest.mark.parametrize("size", [(288, 144), (64, 32), (7, 5)])
def test_isa_keeps_the_input_size_and_starts_as_identity(size) -> None:
    isa = StyleAdapter(init="dirac")
    x = torch.randn(2, 3, *size)
    y = isa(x)
    assert y.shape == x.shape
    assert torch.allclose(y[..., 1:-1, 1:-1], x[..., 1:-1, 1:-1], atol=1e-6)
    assert y[..., 0, :].abs().max() == 0  # the one-pixel border starts at zero
    assert StyleAdapter(init="default")(x).shape == x.shape


def test_pretrained_from_a_local_file(tmp_path) -> None:
    reference = torchvision.models.resnet18(weights=None)
    torch.save({"state_dict": reference.state_dict()}, tmp_path / "r18.pth")
    body, _ = build_backbone("resnet18", pretrained=str(tmp_path / "r18.pth"))
    assert torch.equal(body[0].weight, reference.conv1.weight)
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(UserError, match="does not fit this backbone"):
        build_backbone("resnet18", pretrained=str(tmp_path / "bad.pth"))
    with pytest.raises(UserError, match="does not exist"):
        build_backbone("resnet18", pretrained=str(tmp_path / "none.pth"))


def test_failed_download_says_how_to_pass_a_local_file(monkeypatch: pytest.MonkeyPatch) -> None:
    class Offline:
        url = "https://example.invalid/resnet50.pth"

        def get_state_dict(self, progress: bool = False):
            raise urllib.error.URLError("no network")

    monkeypatch.setattr("msareid.models.backbones._weights_enum", lambda name: Offline())
    with pytest.raises(UserError, match=r"could not download .* --set model\.pretrained=/path/to/file\.pth"):
        build_backbone("resnet50", pretrained="imagenet")
    with pytest.raises(UserError, match="tiny backbone has no ImageNet weights"):
        build_backbone("tiny", pretrained="imagenet")


def test_every_parameter_gets_a_finite_gradient() -> None:
    model = _tiny_msa()
    rgb, ir, labels = _batch()
    msa_losses(model, Batch(rgb, ir, labels))["total"].backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert any(n.startswith("r2i.") for n, _ in trainable) and any(n.startswith("i2r.") for n, _ in trainable)
    for name, p in trainable:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.r2i.conv.weight.grad.abs().sum() > 0 and model.i2r.deconv.weight.grad.abs().sum() > 0


def _images_through_f(model: MSANet, rgb, ir, labels, **kw) -> tuple[dict, int]:
    seen = []
    handle = model.embed.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    terms = msa_losses(model, Batch(rgb, ir, labels), LossConfig(**kw))
    handle.remove()
    return terms, seen[0]


ALL_PARTS = {"img.target_r2i", "img.source_r2i", "img.target_i2r", "img.source_i2r"}


@pytest.mark.parametrize(
    ("r2i", "i2r", "source", "target", "pair_terms", "modalities"),
    [
        (False, False, "ssl_plus", "ssl", set(), 2),  # B: baseline
        (True, False, "none", "none", set(), 3),  # B + ISA, R2I only
        (False, True, "none", "none", set(), 3),  # B + ISA, I2R only
        (True, True, "none", "none", set(), 4),  # B + ISA
        (True, False, "ssl_plus", "ssl", {"img.target_r2i", "img.source_r2i"}, 3),  # B + ISA + SSC, R2I
        (False, True, "ssl_plus", "ssl", {"img.target_i2r", "img.source_i2r"}, 3),  # B + ISA + SSC, I2R
        (True, True, "ssl_plus", "ssl", ALL_PARTS, 4),  # MSA
        (True, True, "ssl", "ssl", ALL_PARTS, 4),  # Table 5 row 1
        (True, True, "ssl_plus", "none", {"img.source_r2i", "img.source_i2r"}, 4),  # Table 5 row 3
        (True, True, "none", "ssl", {"img.target_r2i", "img.target_i2r"}, 4),  # Table 5 row 4
    ],
)
def test_ablations_change_terms_and_modalities(r2i, i2r, source, target, pair_terms, modalities) -> None:
    model = _tiny_msa(r2i, i2r)
    rgb, ir, labels = _batch()
    terms, batch = _images_through_f(model, rgb, ir, labels, source_loss=source, target_loss=target)
    assert set(terms) == {"total", "id", "triplet", "img"} | pair_terms
    assert batch == modalities * len(labels)
    assert torch.isfinite(terms["total"])


def test_total_combines_the_terms_with_alpha_beta_gamma() -> None:
    model = _tiny_msa()
    # perturb the adapters so every pair term is non-zero
    with torch.no_grad():
        for p in list(model.r2i.parameters()) + list(model.i2r.parameters()):
            p.add_(0.05 * torch.randn_like(p))
    rgb, ir, labels = _batch()
    t = msa_losses(model, Batch(rgb, ir, labels), LossConfig(alpha=1.3, beta=1.0, gamma=0.7))
    img = 1.3 * (t["img.target_r2i"] + t["img.target_i2r"]) - 1.0 * (t["img.source_r2i"] + t["img.source_i2r"])
    assert torch.allclose(t["img"], img)
    assert torch.allclose(t["total"], img + 0.7 * t["triplet"] + t["id"])
    # Algorithm 1: the R2I target is IR and its source RGB
    from msareid.losses.image import ssl_loss, ssl_plus_loss

    r2i = model.r2i(rgb)
    assert torch.allclose(t["img.target_r2i"], ssl_loss(ir, r2i))
    assert torch.allclose(t["img.source_r2i"], ssl_plus_loss(rgb, r2i))


def test_build_model_from_config() -> None:
    cfg = load_config("configs/tiny.toml", ["model.r2i=false"])
    model = build_model(cfg, 9)
    assert model.r2i is None and model.i2r is not None and model.embed.num_classes == 9


@pytest.mark.parametrize("segments", [2, 4, 5])
def test_activation_checkpointing_trains_exactly_as_a_plain_step(segments: int) -> None:
    """Same losses, gradients and BatchNorm running statistics with and without checkpointing."""
    results = []
    for seg in (0, segments):
        torch.manual_seed(0)
        model = MSANet(EmbeddingNet("tiny", 5, checkpoint_segments=seg), isa_init="default")
        rgb, ir, labels = _batch()
        terms = msa_losses(model, Batch(rgb, ir, labels))
        terms["total"].backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((terms["total"].detach(), grads, {k: v.clone() for k, v in model.state_dict().items()}))
    (t0, g0, s0), (t1, g1, s1) = results
    assert torch.allclose(t0, t1, atol=1e-6) and g0.keys() == g1.keys()
    for name in g0:
        assert torch.allclose(g0[name], g1[name], atol=1e-5, rtol=1e-4), name
    for name in s0:  # running means, variances and batch counters as without checkpointing
        assert torch.allclose(s0[name].float(), s1[name].float(), atol=1e-6), name
