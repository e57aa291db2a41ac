"""AGW's network, loss and recipe (the paper's Table 3): each piece against a literal form of the
reference's formula, the parameter and MAC figures, the stems' routing, the schedule per group."""

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from msareid.cli import main
from msareid.config import LossConfig
from msareid.engine import build_optimizer
from msareid.losses.feature import weighted_regularized_triplet
from msareid.models import EmbeddingNet, MSANet
from msareid.models.agw import NonLocal, gem
from msareid.recipes import load_config
from msareid.systems.base import Batch
from msareid.systems.network import build_model
from msareid.systems.objective import msa_losses
from msareid.training.epoch import set_learning_rate
from msareid.training.schedule import lr_at


def _reference_wrt(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The reference's TripletLoss_WRT written out step by step (pdist, softmax_weights, SoftMarginLoss)."""
    n = inputs.shape[0]
    sq = inputs.pow(2).sum(dim=1, keepdim=True)
    dist = (sq.expand(n, n) + sq.expand(n, n).t() - 2 * inputs @ inputs.t()).clamp(min=1e-12).sqrt()
    is_pos = targets.expand(n, n).eq(targets.expand(n, n).t()).float()
    is_neg = targets.expand(n, n).ne(targets.expand(n, n).t()).float()
    dist_ap, dist_an = dist * is_pos, dist * is_neg

    def softmax_weights(d: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        max_v = torch.max(d * mask, dim=1, keepdim=True)[0]
        diff = d - max_v
        z = torch.sum(torch.exp(diff) * mask, dim=1, keepdim=True) + 1e-6
        return torch.exp(diff) * mask / z

    furthest_positive = torch.sum(dist_ap * softmax_weights(dist_ap, is_pos), dim=1)
    closest_negative = torch.sum(dist_an * softmax_weights(-dist_an, is_neg), dim=1)
    return nn.SoftMarginLoss()(closest_negative - furthest_positive, torch.ones_like(furthest_positive))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wrt_equals_the_reference_formula_in_value_and_gradient(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(24, 16, generator=g) * (1 + seed)).double()
    labels = torch.arange(6).repeat_interleave(4)[torch.randperm(24, generator=g)]
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, ref = weighted_regularized_triplet(a, labels), _reference_wrt(b, labels)
    ours.backward()
    ref.backward()
    assert ours.shape == () and torch.allclose(ours, ref, rtol=1e-10, atol=1e-12)
    assert torch.allclose(a.grad, b.grad, rtol=1e-9, atol=1e-12)
    # far-apart identities give a smaller loss than overlapping ones
    spread = torch.randn(24, 16, generator=g).double() * 0.01 + labels[:, None].double() * 10
    assert weighted_regularized_triplet(spread, labels) < weighted_regularized_triplet(x, labels)


def _literal_non_local(block: NonLocal, x: torch.Tensor) -> torch.Tensor:
    """The reference's order: f = theta^T phi, divided by N, times g (no softmax)."""
    b, _, h, w = x.shape
    g = block.g(x).view(b, block.inter_channels, -1).permute(0, 2, 1)
    theta = block.theta(x).view(b, block.inter_channels, -1).permute(0, 2, 1)
    phi = block.phi(x).view(b, block.inter_channels, -1)
    f = torch.matmul(theta, phi)
    y = torch.matmul(f / f.size(-1), g).permute(0, 2, 1).contiguous().view(b, block.inter_channels, h, w)
    return block.W(y) + x


@pytest.mark.parametrize("inter", [1, 4])
def test_non_local_equals_its_literal_form_and_starts_as_identity(inter: int) -> None:
    torch.manual_seed(0)
    block = NonLocal(8, inter).double()
    x = torch.randn(3, 8, 6, 5, dtype=torch.double)
    assert torch.equal(block(x), x)  # W's BatchNorm starts at zero
    nn.init.normal_(block.W[1].weight)
    nn.init.normal_(block.W[1].bias)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, ref = block(a), _literal_non_local(block, b)
    assert torch.allclose(ours, ref, atol=1e-12)
    (ours * ref.detach()).sum().backward()
    grads = [p.grad.clone() for p in block.parameters()]
    block.zero_grad()
    (ref * ref.detach()).sum().backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-10)
    for g1, p in zip(grads, block.parameters()):
        assert torch.allclose(g1, p.grad, rtol=1e-8, atol=1e-9), (g1 - p.grad).abs().max()


def test_gem_is_the_references_fixed_p_formula() -> None:
    x = torch.rand(2, 5, 4, 3, dtype=torch.double) * 3
    expected = (torch.mean(x.view(2, 5, -1) ** 3.0, dim=-1) + 1e-12) ** (1 / 3.0)
    assert torch.allclose(gem(x).double(), expected, atol=1e-6)
    assert torch.all(gem(x) >= x.mean(dim=(2, 3)).float() - 1e-5)  # a power mean is at least the mean


def test_agw_network_figures_on_resnet50() -> None:
    agw = EmbeddingNet("resnet50", 395, two_stream=True, non_local="one", pooling="gem")
    plain = EmbeddingNet("resnet50", 395, two_stream=True)
    assert sum(p.numel() for p in agw.parameters()) == 24_359_311  # both stems, the frozen BNNeck bias
    assert sum(p.numel() for p in plain.parameters()) == 24_330_624
    blocks = [m for m in agw.modules() if isinstance(m, NonLocal)]
    assert [b.in_channels for b in blocks] == [512, 512, 1024, 1024, 1024]
    assert all(b.inter_channels == 1 for b in blocks)
    half = EmbeddingNet("resnet50", 395, non_local="half")
    assert [b.inter_channels for b in half.modules() if isinstance(b, NonLocal)] == [256, 256, 512, 512, 512]


@pytest.mark.slow
def test_profile_prints_agws_parameters_and_macs(capsys: pytest.CaptureFixture) -> None:
    assert main(["profile", "--config", "configs/sysu_agw.toml", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == 24_359_311 and out["input_size"] == [288, 144]
    # F's 5.1307 G, the 5 non-local blocks' 1x1 convolutions (4.64 M) and their attention products
    assert out["macs_per_image"] == 5_135_377_900


@pytest.mark.parametrize(("backbone", "stem", "blocks"),
                         [("resnet18", 4, [128, 128, 256, 256]), ("tiny", 3, [64, 128])])
def test_small_backbones_take_the_same_pieces(backbone: str, stem: int, blocks: list[int]) -> None:
    net = EmbeddingNet(backbone, 5, two_stream=True, non_local="one", pooling="gem")
    assert len(net.stems[0]) == len(net.stems[1]) == stem
    assert [b.in_channels for b in net.modules() if isinstance(b, NonLocal)] == blocks
    out = net.eval()(torch.randn(2, 3, 64, 32), torch.tensor([0, 1]))
    assert out.pooled.shape == (2, net.feature_dim)
    with pytest.raises(ValueError, match="stem and stages"):
        EmbeddingNet("densenet121", 5, two_stream=True)


class _Recorder:
    def __init__(self, module: nn.Module) -> None:
        self.seen: list[torch.Tensor] = []
        module.register_forward_hook(lambda m, args, out: self.seen.append(args[0].detach().clone()))


@pytest.mark.parametrize("generated_stem", ["target", "source"])
def test_each_stem_sees_its_own_modality_and_gets_gradients(generated_stem: str) -> None:
    torch.manual_seed(0)
    net = MSANet(EmbeddingNet("tiny", 3, two_stream=True, non_local="one", pooling="gem"),
                 generated_stem=generated_stem).train()
    assert all(torch.equal(a, b) for a, b in zip(net.embed.stems[0].state_dict().values(),
                                                 net.embed.stems[1].state_dict().values()))  # one start
    rgb_seen, ir_seen = _Recorder(net.embed.stems[0]), _Recorder(net.embed.stems[1])
    r2i_seen, i2r_seen = _Recorder(net.r2i), _Recorder(net.i2r)
    rgb, ir, labels = torch.randn(4, 3, 32, 16), torch.randn(4, 3, 32, 16) + 5, torch.tensor([0, 0, 1, 1])
    msa_losses(net, Batch(rgb, ir, labels), LossConfig(triplet="wrt"))["total"].backward()
    (rgb_in,), (ir_in,) = rgb_seen.seen, ir_seen.seen
    r2i, i2r = net.r2i(rgb), net.i2r(ir)
    expected_rgb = [rgb, i2r] if generated_stem == "target" else [rgb, r2i]
    expected_ir = [ir, r2i] if generated_stem == "target" else [ir, i2r]
    assert torch.allclose(rgb_in, torch.cat(expected_rgb), atol=1e-6)
    assert torch.allclose(ir_in, torch.cat(expected_ir), atol=1e-6)
    assert r2i_seen.seen and i2r_seen.seen
    for stem in net.embed.stems:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in stem.parameters())
    # at test time the modality chooses the stem; without it a two-stream F refuses
    net.eval()
    with torch.no_grad():
        by_hand = net.embed.forward_head(net.embed.backbone(net.embed.stems[1](ir)))
        assert torch.allclose(net(ir, 1).bnneck, by_hand.bnneck)
        mixed = net(torch.cat([rgb[:1], ir[:1]]), torch.tensor([0, 1])).bnneck
        assert torch.allclose(mixed, torch.cat([net(rgb[:1], 0).bnneck, net(ir[:1], 1).bnneck]), atol=1e-5)
    with pytest.raises(ValueError, match="stem for each modality"):
        net(rgb)


def test_agw_schedule_per_epoch_and_per_parameter_group() -> None:
    cfg = load_config("configs/sysu_agw.toml", ["model.backbone=tiny", "model.pretrained=none"])
    model = build_model(cfg, 10)
    opt = build_optimizer(model, cfg)
    assert isinstance(opt, torch.optim.SGD)
    base, head = opt.param_groups
    assert base["momentum"] == 0.9 and base["nesterov"] and base["weight_decay"] == 5e-4
    head_ids = {id(p) for p in head["params"]}
    assert head_ids == {id(model.embed.bnneck.weight), id(model.embed.classifier.weight)}
    assert len(base["params"]) + len(head["params"]) == sum(p.requires_grad for p in model.parameters())

    def reference(epoch: int) -> float:  # the reference's adjust_learning_rate
        if epoch < 10:
            return 0.1 * (epoch + 1) / 10
        if epoch < 20:
            return 0.1
        if epoch < 50:
            return 0.01
        return 0.001

    t = cfg.train
    for epoch in range(t.epochs):
        set_learning_rate(opt, lr_at(epoch, t.lr, t.warmup_epochs, t.milestones, t.lr_decay))
        assert head["lr"] == pytest.approx(reference(epoch), rel=1e-12)
        assert base["lr"] == pytest.approx(0.1 * reference(epoch), rel=1e-12)
    assert t.epochs == 81 and cfg.sampler.num_ids == 8 and cfg.data.random_erasing == 0


def test_table3_rows_resolve_from_either_base_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from msareid.ablation.plan import plan
    from msareid.ablation.rows import resolve_rows
    from msareid.config import config_to_dict

    rows = resolve_rows(["table3"], [])
    assert [r.name for r in rows] == ["AGW", "DDAG", "MSA(AGW)"]
    recipe = ("model", "loss", "train", "sampler")
    planned = {}
    for base in ("configs/sysu.toml", "configs/sysu_agw.toml", "configs/sysu_ddag.toml"):
        runs = plan(load_config(base), rows, [0], tmp_path)
        planned[base] = [{k: v for k, v in config_to_dict(r.config).items() if k in recipe} for r in runs]
        for run in planned[base]:
            if run["loss"]["triplet"] == "wrt":  # WRT has no margin: the base config's value is not used
                run["loss"].pop("margin")
    assert planned["configs/sysu.toml"] == planned["configs/sysu_agw.toml"] == planned["configs/sysu_ddag.toml"]
    agw, ddag, msa = planned["configs/sysu.toml"]
    # the DDAG row is configs/sysu_ddag.toml's recipe; AGW's network without non-local blocks and GeM
    ddag_config = {k: v for k, v in config_to_dict(load_config("configs/sysu_ddag.toml")).items() if k in recipe}
    assert ddag == ddag_config
    assert ddag["model"]["parts"] == 3 and ddag["model"]["graph_attention"] and ddag["model"]["two_stream"]
    assert (ddag["model"]["non_local"], ddag["model"]["pooling"], ddag["loss"]["triplet"]) == ("off", "avg",
                                                                                              "batch_hard")
    assert ddag["loss"]["margin"] == 0.3 and ddag["train"] == {**agw["train"]} and ddag["sampler"] == agw["sampler"]
    assert agw["model"]["parts"] == msa["model"]["parts"] == 0 and not msa["model"]["graph_attention"]
    assert agw["model"]["two_stream"] and agw["model"]["non_local"] == "one" and agw["model"]["pooling"] == "gem"
    assert agw["loss"]["triplet"] == msa["loss"]["triplet"] == "wrt" and agw["train"]["optimizer"] == "sgd"
    assert not agw["model"]["r2i"] and msa["model"]["r2i"] and msa["model"]["i2r"]
    assert (msa["loss"]["source_loss"], msa["loss"]["target_loss"]) == ("ssl_plus", "ssl")
    # the two rows differ by MSA's ISA and L_img only
    differs = {f"{s}.{k}" for s in recipe for k in agw[s] if agw[s][k] != msa[s][k]}
    assert differs == {"model.r2i", "model.i2r", "loss.source_loss", "loss.target_loss", "loss.gamma"} - (
        {"loss.gamma"} if msa["loss"]["gamma"] == 1.0 else set())
    # --epochs resizes every row's own schedule alike; --dry-run shows it and trains nothing
    assert main(["ablate", "--config", "configs/tiny.toml", "--rows", "table4", "--rows", "table3", "--only",
                 "B,AGW", "--seeds", "0,1", "--epochs", "20", "--out", str(tmp_path / "ab"), "--dry-run",
                 "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["runs"]
    assert [(r["row"], r["seed"]) for r in shown] == [("B", 0), ("AGW", 0), ("B", 1), ("AGW", 1)]
    b0, agw0, b1 = shown[0]["settings"], shown[1]["settings"], shown[2]["settings"]
    assert b0 == {"train.epochs": 20, "train.warmup_epochs": 1, "train.milestones": [12, 18],  # 40 -> 20
                  "model.r2i": False, "model.i2r": False, "loss.source_loss": "none", "loss.target_loss": "none"}
    assert agw0["train.epochs"] == 20 and agw0["train.milestones"] == [5, 12] and agw0["train.optimizer"] == "sgd"
    assert b1["train.seed"] == 1 and shown[3]["run_dir"] == str(tmp_path / "ab" / "runs" / "AGW" / "seed1")
    assert not (tmp_path / "ab").exists()
    assert main(["ablate", "--config", "configs/tiny.toml", "--rows", "table3", "--seeds", "0", "--out",
                 str(tmp_path / "ab"), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "MSA(AGW) seed 0 ->" in text and 'loss.triplet="wrt"' in text and "nothing trained" in text
