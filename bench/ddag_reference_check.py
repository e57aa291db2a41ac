"""DDAG beside its reference code: the reference's own model_main.py, attention.py and loss.py (a
checkout of mangye16/DDAG, passed as REF) against msareid's DDAG network and objective.

    python bench/ddag_reference_check.py REF

Builds the reference's ``embed_net(512, 395, part=3, wpa=True)`` (random weights: its ResNet-50
download is replaced by the architecture without weights), copies its weights into msareid's
network of ``configs/sysu_ddag.toml``, and prints the largest differences of the BNNeck and
part-aggregated test features of RGB and IR images (eval mode), of the training outputs (pooled
features, both logits, the graph attention's log-probabilities under the same dropout draws), of
the loss of one step (its train_ddag.py lines at a graph weight of 0.25), and the parameter counts
(the parameters that get a gradient, plus the two frozen BNNeck biases)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F


def _reference(ref: Path):
    sys.path.insert(0, str(ref))
    import resnet  # the reference's ResNet wrapper

    original = resnet.resnet50
    resnet.resnet50 = lambda pretrained=False, **kw: original(pretrained=False, **kw)  # no download
    import model_main

    model_main.resnet50 = resnet.resnet50
    import loss as ref_loss

    class Triplet(ref_loss.OriTripletLoss):  # its dist.addmm_(1, -2, ...) signature is gone from torch
        def forward(self, inputs: torch.Tensor, targets: torch.Tensor):
            n = inputs.size(0)
            dist = torch.pow(inputs, 2).sum(dim=1, keepdim=True).expand(n, n)
            dist = (dist + dist.t()).addmm(inputs, inputs.t(), beta=1, alpha=-2).clamp(min=1e-12).sqrt()
            mask = targets.expand(n, n).eq(targets.expand(n, n).t())
            dist_ap = torch.cat([dist[i][mask[i]].max().unsqueeze(0) for i in range(n)])
            dist_an = torch.cat([dist[i][mask[i] == 0].min().unsqueeze(0) for i in range(n)])
            return self.ranking_loss(dist_an, dist_ap, torch.ones_like(dist_an)), 0

    return model_main, Triplet


def _copy_weights(ref_net: torch.nn.Module, ours: torch.nn.Module) -> None:
    """The reference's state dict under msareid's names (stems, layers, heads, part aggregation, graph)."""
    state = {}
    for stem, module in ((0, ref_net.visible_module.visible), (1, ref_net.thermal_module.thermal)):
        for i, name in ((0, "conv1"), (1, "bn1")):
            for k, v in getattr(module, name).state_dict().items():
                state[f"embed.stems.{stem}.{i}.{k}"] = v
    base = ref_net.base_resnet.base
    for layer in (1, 2, 3, 4):
        for i, block in enumerate(getattr(base, f"layer{layer}")):
            for k, v in block.state_dict().items():
                state[f"embed.backbone.{layer - 1}.{i}.{k}"] = v
    for k, v in ref_net.bottleneck.state_dict().items():
        state[f"embed.bnneck.{k}"] = v
    state["embed.classifier.weight"] = ref_net.classifier.weight
    wpa = ref_net.wpa
    for ours_name, theirs in (("query", wpa.fc1[0]), ("key", wpa.fc2), ("value", wpa.fc3)):
        for k, v in theirs.state_dict().items():
            state[f"embed.part_head.{ours_name}.{k}"] = v
    state["embed.part_head.part_weights"] = wpa.gate
    for k, v in wpa.bottleneck.state_dict().items():
        state[f"embed.part_head.bnneck.{k}"] = v
    for i in range(4):
        head = getattr(ref_net, f"attention_{i}")
        state[f"graph.heads.{i}.weight"], state[f"graph.heads.{i}.attention"] = head.W, head.a
    state["graph.out.weight"], state["graph.out.attention"] = ref_net.out_att.W, ref_net.out_att.a
    ours.load_state_dict(state, strict=True)


def _adjacency(labels: torch.Tensor, n_class: int) -> torch.Tensor:
    """train_ddag.py's graph construction, line for line."""
    one_hot = torch.index_select(torch.eye(n_class), dim=0, index=labels)
    adj = torch.mm(one_hot, torch.transpose(one_hot, 0, 1)).float() + torch.eye(labels.size()[0]).float()
    w_norm = adj.pow(2).sum(1, keepdim=True).pow(1.0 / 2)
    return adj.div(w_norm)


def main(ref: Path) -> None:
    from msareid.config import LossConfig
    from msareid.models.ddag import label_adjacency
    from msareid.recipes import load_config
    from msareid.systems.base import Batch, Hooks
    from msareid.systems.network import build_model
    from msareid.systems.objective import TOTAL, msa_losses

    model_main, Triplet = _reference(ref)
    torch.manual_seed(0)
    ref_net = model_main.embed_net(512, 395, drop=0.2, part=3, arch="resnet50", wpa=True)
    with torch.no_grad():  # a new part weighting is uniform: make it matter
        ref_net.wpa.gate.add_(torch.tensor([0.3, -0.2, 0.1]))
    cfg = load_config("configs/sysu_ddag.toml", ["model.pretrained=none"])
    ours = build_model(cfg, 395)
    _copy_weights(ref_net, ours)
    n = 4
    rgb, ir = torch.randn(n, 3, 288, 144), torch.randn(n, 3, 288, 144)
    labels = torch.tensor([0, 0, 1, 1])
    both = torch.cat([labels, labels])
    ref_net.eval(), ours.eval()
    with torch.no_grad():
        for modal, x, stem in ((1, rgb, 0), (2, ir, 1)):
            ref_feat, ref_att = ref_net(x, x, 0, modal)  # L2-normalised at test time
            out = ours(x, stem)
            d_bn = (F.normalize(out.bnneck, dim=1) - ref_feat).abs().max().item()
            d_part = (F.normalize(out.extra["part"], dim=1) - ref_att).abs().max().item()
            print(f"eval, modality {'RGB' if stem == 0 else 'IR'}: max |BNNeck diff| {d_bn:.2e}, "
                  f"max |part-aggregated diff| {d_part:.2e}")
    print(f"adjacency: max |diff| {(label_adjacency(both) - _adjacency(both, 395)).abs().max().item():.2e}")
    ref_net.train(), ours.train()
    adj = _adjacency(both, 395)
    torch.manual_seed(1)
    ref_pool, ref_logits, ref_part_logits, ref_graph = ref_net(rgb, ir, adj)
    torch.manual_seed(1)
    out = ours.embed(torch.cat([rgb, ir]), torch.tensor([0] * n + [1] * n))
    graph = ours.graph(out.pooled, label_adjacency(both))
    print(f"train: max |pooled diff| {(out.pooled - ref_pool).abs().max().item():.2e}, max |logits diff| "
          f"{(out.logits - ref_logits).abs().max().item():.2e}, max |part logits diff| "
          f"{(out.extra_logits['part'] - ref_part_logits).abs().max().item():.2e}, max |graph log-prob diff| "
          f"{(graph - ref_graph).abs().max().item():.2e}")
    weight = 0.25
    ref_net.zero_grad()
    loss_id = F.cross_entropy(ref_logits, both)
    loss_tri, _ = Triplet(2 * n, margin=0.3)(ref_pool, both)
    loss_p = F.cross_entropy(ref_part_logits, both)
    loss_g = F.nll_loss(ref_graph, both)
    theirs = loss_id + loss_tri + loss_p + weight * loss_g
    theirs.backward()
    used = sum(p.numel() for p in ref_net.parameters() if p.grad is not None)
    used += ref_net.bottleneck.bias.numel() + ref_net.wpa.bottleneck.bias.numel()
    ours.load_state_dict(ours.state_dict())  # (BatchNorm running statistics moved; the loss uses batch ones)
    torch.manual_seed(1)
    mine = msa_losses(ours, Batch(rgb, ir, labels), LossConfig(margin=0.3, source_loss="none", target_loss="none"),
                      Hooks(state={"graph_weight": weight}))
    print(f"loss of one step (graph weight {weight}): reference {theirs.item():.6f}, msareid "
          f"{mine[TOTAL].item():.6f} (id {mine['id'].item():.6f} / {loss_id.item():.6f}, triplet "
          f"{mine['triplet'].item():.6f} / {loss_tri.item():.6f}, part {mine['part'].item():.6f} / "
          f"{loss_p.item():.6f}, graph {mine['graph'].item():.6f} / {loss_g.item():.6f})")
    print(f"parameters: reference (with a gradient, plus both frozen BNNeck biases) {used:,}; msareid "
          f"{sum(p.numel() for p in ours.parameters()):,}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
