"""DDAG (Table 3's second system): part aggregation and graph attention against literal forms of the
reference's code (values and gradients), the adjacency, the objective's terms and the dynamic
weight, the parameter figure, the parameter groups, and the graph branch's absence at test time."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from msareid.cli import main
from msareid.config import LossConfig
from msareid.engine import build_optimizer
from msareid.losses.feature import multi_modality_triplet
from msareid.models import EmbeddingNet, MSANet
from msareid.models.ddag import GraphAttention, GraphAttentionLayer, PartAggregation, label_adjacency, part_stripes
from msareid.recipes import load_config
from msareid.systems.base import Batch, Hooks
from msareid.systems.ddag import dynamic_graph_weight
from msareid.systems.network import build_model
from msareid.systems.objective import TOTAL, msa_losses

DDAG = ["model.r2i=false", "model.i2r=false", "loss.source_loss=\"none\"", "loss.target_loss=\"none\"",
        "model.two_stream=true", "model.parts=3", "model.graph_attention=true", "loss.margin=0.3"]


def _reference_iwpa(m: PartAggregation, x: torch.Tensor, feat: torch.Tensor, t: int, part: int) -> torch.Tensor:
    """The reference's IWPA.forward, line by line (fc1, fc2, fc3 = query, key, value; gate = part_weights)."""
    bt, c, h, w = x.shape
    b = bt // t
    part_feat = F.adaptive_avg_pool2d(x, (part, 1))
    part_feat = part_feat.view(b, t, c, part)
    part_feat = part_feat.permute(0, 2, 1, 3)
    part_feat1 = m.query(part_feat).view(b, c, -1)
    part_feat1 = part_feat1.permute(0, 2, 1)
    part_feat2 = m.key(part_feat).view(b, c, -1)
    part_feat3 = m.value(part_feat).view(b, c, -1)
    part_feat3 = part_feat3.permute(0, 2, 1)
    cpa_att = torch.matmul(part_feat1, part_feat2)
    cpa_att = F.softmax(cpa_att, dim=-1)
    refined_part_feat = torch.matmul(cpa_att, part_feat3)
    refined_part_feat = refined_part_feat.permute(0, 2, 1).contiguous()
    refined_part_feat = refined_part_feat.view(b, c, part)
    gate = F.softmax(m.part_weights, dim=-1)
    weight_part_feat = torch.matmul(refined_part_feat, gate)
    weight_part_feat = weight_part_feat + feat
    return m.bnneck(weight_part_feat)


def _grads(module: nn.Module, *inputs: torch.Tensor) -> list[torch.Tensor]:
    return [p.grad.clone() for p in module.parameters() if p.grad is not None] + [x.grad.clone() for x in inputs]


@pytest.mark.parametrize("parts", [1, 3, 4])
def test_part_aggregation_equals_the_reference_in_value_and_gradient(parts: int) -> None:
    torch.manual_seed(parts)
    m = PartAggregation(12, parts).double().train()
    with torch.no_grad():
        m.part_weights.add_(torch.randn(parts, dtype=torch.float64))  # not all equal: the weighting matters
    twin = PartAggregation(12, parts).double().train()
    twin.load_state_dict(m.state_dict())
    maps = torch.randn(6, 12, 8, 4, dtype=torch.float64)
    feat = torch.randn(6, 12, dtype=torch.float64)
    a, fa = maps.clone().requires_grad_(), feat.clone().requires_grad_()
    b, fb = maps.clone().requires_grad_(), feat.clone().requires_grad_()
    ours, ref = m(a, fa), _reference_iwpa(twin, b, fb, 1, parts)
    target = torch.randn_like(ours)
    (ours * target).sum().backward()
    (ref * target).sum().backward()
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    for g1, g2 in zip(_grads(m, a, fa), _grads(twin, b, fb), strict=True):
        torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-12)
    assert (m.part_weights.grad.abs().sum() > 0) == (parts > 1) and a.grad.abs().sum() > 0  # one part: weight 1
    assert not m.bnneck.bias.requires_grad  # BNNeck: frozen shift
    torch.testing.assert_close(m.bnneck.running_mean, twin.bnneck.running_mean)  # same statistics updated


@pytest.mark.parametrize(("height", "parts"), [(18, 3), (4, 3), (7, 3), (5, 4), (6, 1)])
def test_part_stripes_equal_adaptive_pooling_at_any_height(height: int, parts: int) -> None:
    x = torch.randn(2, 5, height, 3, dtype=torch.float64)
    expected = F.adaptive_avg_pool2d(x, (parts, 1)).flatten(2)
    torch.testing.assert_close(part_stripes(x, parts), expected, rtol=1e-12, atol=1e-12)


def test_part_weights_start_equal_and_parts_are_horizontal_stripes() -> None:
    m = PartAggregation(4, 3)
    assert torch.equal(m.part_weights.data, torch.full((3,), 1 / 3))
    # only the top third of the map differs between two images: only the first part's stripe changes
    x = torch.zeros(2, 4, 6, 2)
    x[1, :, :2] = 1.0
    stripes = part_stripes(x, 3)
    assert torch.equal(stripes[1, :, 0], torch.ones(4)) and torch.equal(stripes[1, :, 1:], torch.zeros(4, 2))


def _reference_gat_layer(layer: GraphAttentionLayer, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
    """The reference's GraphAttentionLayer.forward (pyGAT's dense layer) written out."""
    h = torch.mm(x, layer.weight)
    n, out = h.shape
    a_input = torch.cat([h.repeat(1, n).view(n * n, -1), h.repeat(n, 1)], dim=1).view(n, -1, 2 * out)
    e = F.leaky_relu(torch.matmul(a_input, layer.attention).squeeze(2), layer.slope)
    attention = torch.where(adj > 0, e, -9e15 * torch.ones_like(e))
    attention = F.softmax(attention, dim=1)
    attention = F.dropout(attention, layer.dropout, training=layer.training)
    h_prime = torch.matmul(attention, h)
    return F.elu(h_prime) if layer.activate else h_prime


@pytest.mark.parametrize(("dropout", "activate"), [(0.0, True), (0.2, True), (0.2, False)])
def test_graph_attention_layer_equals_the_reference_in_value_and_gradient(dropout: float, activate: bool) -> None:
    torch.manual_seed(1)
    layer = GraphAttentionLayer(10, 6, dropout=dropout, activate=activate).double().train()
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 3, 3])
    adj = label_adjacency(labels).double()
    x = torch.randn(8, 10, dtype=torch.float64)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    torch.manual_seed(7)  # the same dropout mask for both
    ours = layer(a, adj)
    ours.square().sum().backward()
    first = _grads(layer, a)
    layer.zero_grad()
    torch.manual_seed(7)
    ref = _reference_gat_layer(layer, b, adj)
    ref.square().sum().backward()
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    for g1, g2 in zip(first, _grads(layer, b), strict=True):
        torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-12)


def test_attention_stays_within_identities() -> None:
    torch.manual_seed(0)
    layer = GraphAttentionLayer(5, 3, dropout=0.0, activate=False).double().eval()
    labels = torch.tensor([0, 0, 1, 1, 2])
    x = torch.randn(5, 5, dtype=torch.float64)
    out = layer(x, label_adjacency(labels))
    moved = x.clone()
    moved[2:] += 100.0  # other identities change: the nodes of identity 0 see none of it
    torch.testing.assert_close(layer(moved, label_adjacency(labels))[:2], out[:2])
    torch.testing.assert_close(out[4], x[4] @ layer.weight)  # a node alone attends to itself only


def test_adjacency_is_the_references_one_hot_product() -> None:
    labels = torch.tensor([3, 0, 3, 1, 0, 3])
    one_hot = torch.index_select(torch.eye(5), dim=0, index=labels)
    adj = torch.mm(one_hot, one_hot.t()).float() + torch.eye(6)
    expected = adj.div(adj.pow(2).sum(1, keepdim=True).pow(0.5))
    torch.testing.assert_close(label_adjacency(labels), expected)
    assert torch.equal(label_adjacency(labels) > 0, labels[:, None] == labels[None, :])


def test_graph_head_equals_the_reference_branch() -> None:
    """embed_net's training branch: dropout, 4 heads concatenated, dropout, output layer, ELU, log-softmax."""
    torch.manual_seed(3)
    graph = GraphAttention(16, 5, heads=4, dim=8).double().train()
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    adj = label_adjacency(labels).double()
    x = torch.randn(10, 16, dtype=torch.float64)
    torch.manual_seed(11)
    ours = graph(x, adj)
    torch.manual_seed(11)
    x_g = F.dropout(x, 0.2, training=True)
    x_g = torch.cat([_reference_gat_layer(att, x_g, adj) for att in graph.heads], dim=1)
    x_g = F.dropout(x_g, 0.2, training=True)
    ref = F.log_softmax(F.elu(_reference_gat_layer(graph.out, x_g, adj)), dim=1)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    assert [h.out_features for h in graph.heads] == [8] * 4 and graph.out.weight.shape == (32, 5)


def _tiny_ddag(num_classes: int = 4) -> MSANet:
    cfg = load_config("configs/tiny.toml", [*DDAG, "model.r2i=false", "model.i2r=false"])
    return build_model(cfg, num_classes)


def test_objective_adds_the_part_id_loss_and_the_weighted_graph_loss() -> None:
    torch.manual_seed(0)
    model = _tiny_ddag().train()
    rgb, ir = torch.randn(8, 3, 32, 16), torch.randn(8, 3, 32, 16)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    loss = LossConfig(margin=0.3, source_loss="none", target_loss="none")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(5)
    zero = msa_losses(model, Batch(rgb, ir, labels), loss, Hooks(state={"graph_weight": 0.0}))
    model.load_state_dict(state)  # BatchNorm running statistics as before
    torch.manual_seed(5)
    half = msa_losses(model, Batch(rgb, ir, labels), loss, Hooks(state={"graph_weight": 0.5}))
    assert list(zero) == [TOTAL, "id", "triplet", "img", "part", "graph"]
    torch.testing.assert_close(zero[TOTAL], zero["id"] + zero["triplet"] + zero["part"])
    torch.testing.assert_close(half[TOTAL], half["id"] + half["triplet"] + half["part"] + 0.5 * half["graph"])
    torch.testing.assert_close(zero["graph"], half["graph"])  # the same dropout: the weight only scales
    assert 0 < float(zero["graph"].detach()) < 10
    # the graph loss reaches the graph's parameters, the part loss the part aggregation
    half[TOTAL].backward()
    assert model.graph.heads[0].weight.grad.abs().sum() > 0 and model.embed.part_head.query.weight.grad is not None
    # each term by hand from F's outputs (RGB and IR blocks, labels repeated)
    model.load_state_dict(state)
    with torch.no_grad():
        out = model.embed(torch.cat([rgb, ir]), model.modalities(8, []))
    both = labels.repeat(2)
    torch.testing.assert_close(zero["part"].detach(), F.cross_entropy(out.extra_logits["part"], both))
    torch.testing.assert_close(zero["triplet"].detach(), multi_modality_triplet(out.pooled, both, 0.3))


def test_dynamic_weight_is_one_over_one_plus_the_other_terms() -> None:
    means = {TOTAL: 5.0 + 0.25 * 2.0, "id": 3.0, "triplet": 1.0, "part": 1.0, "graph": 2.0}
    assert dynamic_graph_weight(means, 0.25) == pytest.approx(1 / 6)
    assert dynamic_graph_weight({TOTAL: 3.0, "graph": 4.0}, 0.0) == pytest.approx(1 / 4)


def test_graph_branch_is_untouched_at_test_time() -> None:
    torch.manual_seed(0)
    model = _tiny_ddag().eval()
    calls = []
    model.graph.register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(3, 3, 32, 16)
    before = model(x, 0)
    with torch.no_grad():
        for p in model.graph.parameters():
            p.add_(torch.randn_like(p))
    after = model(x, 0)
    assert not calls
    for name in ("pooled", "bnneck"):
        torch.testing.assert_close(getattr(before, name), getattr(after, name))
    torch.testing.assert_close(before.extra["part"], after.extra["part"])
    assert model.embed.test_feature == "part" and EmbeddingNet("tiny", 4).test_feature == "bnneck"


def test_parameter_groups_follow_the_reference() -> None:
    cfg = load_config("configs/sysu_ddag.toml", ["model.backbone=\"tiny\"", "model.pretrained=\"none\""])
    model = build_model(cfg, 6)
    opt = build_optimizer(model, cfg)
    base, head = opt.param_groups
    assert base["lr"] == pytest.approx(0.01) and head["lr"] == pytest.approx(0.1)
    fast = {id(p) for m in (model.embed.bnneck, model.embed.classifier, model.embed.part_head, model.graph)
            for p in m.parameters() if p.requires_grad}
    assert {id(p) for p in head["params"]} == fast
    assert {id(p) for p in base["params"]} == {id(p) for p in model.parameters() if p.requires_grad} - fast
    assert opt.defaults["nesterov"] and opt.defaults["weight_decay"] == 5e-4


def test_ddag_network_figures_on_resnet50() -> None:
    net = EmbeddingNet("resnet50", 395, two_stream=True)
    net.add_feature_head("part", PartAggregation(net.feature_dim, 3), test_feature=True)
    graph = GraphAttention(2048, 395)
    part = sum(p.numel() for p in net.part_head.parameters())
    assert part == 3 * (2048 * 2048 + 2048) + 2 * 2048 + 3  # query, key, value, BNNeck, part weights
    assert sum(p.numel() for p in graph.parameters()) == 4 * (2048 * 512 + 1024) + 2048 * 395 + 790
    assert sum(p.numel() for p in net.parameters()) + sum(p.numel() for p in graph.parameters()) == 41_931_929


@pytest.mark.slow
def test_profile_prints_ddags_parameters(capsys: pytest.CaptureFixture) -> None:
    assert main(["profile", "--config", "configs/sysu_ddag.toml", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == 41_931_929 and out["training_only_params"] == 5_008_150 and out["num_classes"] == 395


def test_ddag_trains_evaluates_and_reports_the_part_feature(synth_sysu: Path, tmp_path: Path, tiny_overrides,
                                                            capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    argv = ["train", "--config", "configs/tiny.toml", "--out", str(run), "--no-progress"]
    for o in tiny_overrides(synth_sysu, tmp_path / "cache", **{"eval.every": 1}) + DDAG:
        argv += ["--set", o]
    assert main(argv) == 0
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [x for x in lines if x["event"] == "epoch"]
    assert [x["graph_weight"] for x in epochs][0] == 0.0  # the first epoch trains without the graph loss
    rest = epochs[0]["losses"]["total"]  # weight 0: the total is everything but the graph term
    assert epochs[1]["graph_weight"] == pytest.approx(1 / (1 + rest))
    assert {"part", "graph"} <= set(epochs[1]["losses"])
    evals = [x for x in lines if x["event"] == "eval"]
    assert [e["feature"] for e in evals] == ["part", "part"] and "bnneck" in evals[0]
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run / "last.pt"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["feature"] == "part" and result["bnneck"]["feature"] == "bnneck" and "pooled" in result
    # the run's model ran in channels-last memory, the loaded one does not: float rounding may swap near ties
    assert result["mAP"] == pytest.approx(evals[-1]["mAP"], abs=5e-3)
    from msareid.extractor import FeatureExtractor

    fx, fb = FeatureExtractor(run / "last.pt", "cpu"), FeatureExtractor(run / "last.pt", "cpu", feature="bnneck")
    img = torch.rand(3, 32, 16)
    part, bnneck = torch.from_numpy(fx(img, "rgb")), torch.from_numpy(fb(img, "rgb"))
    assert fx.feature == "part" and not torch.allclose(part, bnneck)
    # ONNX: the two-stream graph gains the 'part' output, equal to PyTorch's; no graph attention in it
    import onnxruntime

    from msareid.inference import load_trained

    assert main(["export", "--checkpoint", str(run / "last.pt"), "--format", "onnx", "--out",
                 str(tmp_path / "m.onnx")]) == 0
    assert "'part'" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    model, _, _ = load_trained(run / "last.pt")
    x = torch.rand(3, 3, 32, 16)
    modality = torch.tensor([0, 1, 1])
    part, bnneck = session.run(["part", "bnneck"], {"images": x.numpy(), "modality": modality.numpy()})
    with torch.no_grad():
        ref = model(x, modality)
    torch.testing.assert_close(torch.from_numpy(part), ref.extra["part"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.from_numpy(bnneck), ref.bnneck, atol=1e-4, rtol=1e-4)
    # the report names the run DDAG and plots its loss terms by name
    assert main(["report", str(run), "--out", str(tmp_path / "report.html")]) == 0
    page = (tmp_path / "report.html").read_text()
    assert "<td>DDAG, part-aggregated feature</td>" in page
