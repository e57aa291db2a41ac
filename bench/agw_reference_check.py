"""AGW beside its reference code: the reference's own model.py and loss.py (a checkout of
mangye16/Cross-Modal-Re-ID-baseline, passed as REF) against msareid's AGW network and WRT loss.

    python bench/agw_reference_check.py REF

Builds the reference's ``embed_net`` (random weights: its ResNet-50 download is replaced by
torchvision's architecture without weights), copies its weights into msareid's two-stream F
(``configs/sysu_agw.toml``), and prints the largest differences of the pooled and BNNeck features
of RGB and IR images (eval mode), of the training outputs, of the WRT loss and its gradient, and
the parameter counts (the reference builds two whole ResNet-50s for its stems; only the used
parameters are counted)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch


def _reference(ref: Path):
    sys.path.insert(0, str(ref))
    import resnet  # the reference's ResNet wrapper

    original = resnet.resnet50
    resnet.resnet50 = lambda pretrained=False, **kw: original(pretrained=False, **kw)  # no download
    import model as ref_model

    ref_model.resnet50 = resnet.resnet50
    import loss as ref_loss

    def pdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # its addmm_(1, -2, ...) is gone from torch
        m, n = a.shape[0], b.shape[0]
        d = a.pow(2).sum(1, keepdim=True).expand(m, n) + b.pow(2).sum(1, keepdim=True).expand(n, m).t()
        return d.addmm(a, b.t(), beta=1, alpha=-2).clamp(min=1e-12).sqrt()

    ref_loss.pdist_torch = pdist
    return ref_model, ref_loss


def _copy_weights(ref_net: torch.nn.Module, ours: torch.nn.Module) -> None:
    """The reference's state dict under msareid's names (stems, layers, non-local blocks, head)."""
    state = {}
    for stem, module in ((0, ref_net.visible_module.visible), (1, ref_net.thermal_module.thermal)):
        for i, name in ((0, "conv1"), (1, "bn1")):
            for k, v in getattr(module, name).state_dict().items():
                state[f"embed.stems.{stem}.{i}.{k}"] = v
    base = ref_net.base_resnet.base
    nl_of = {2: (ref_net.NL_2, ref_net.NL_2_idx), 3: (ref_net.NL_3, ref_net.NL_3_idx)}
    for layer in (1, 2, 3, 4):
        blocks, (nls, idx) = getattr(base, f"layer{layer}"), nl_of.get(layer, ([], []))
        for i, block in enumerate(blocks):
            prefix = f"embed.backbone.{layer - 1}.{i}"
            if i in idx:
                for k, v in nls[idx.index(i)].state_dict().items():
                    k = k.replace("g.0.", "g.")
                    state[f"{prefix}.1.{k}"] = v
                prefix += ".0"
            for k, v in block.state_dict().items():
                state[f"{prefix}.{k}"] = v
    for k, v in ref_net.bottleneck.state_dict().items():
        state[f"embed.bnneck.{k}"] = v
    state["embed.classifier.weight"] = ref_net.classifier.weight
    ours.load_state_dict(state, strict=True)


def main(ref: Path) -> None:
    from msareid.losses.feature import weighted_regularized_triplet
    from msareid.recipes import load_config
    from msareid.systems.network import build_model

    ref_model, ref_loss = _reference(ref)
    torch.manual_seed(0)
    ref_net = ref_model.embed_net(395, no_local="on", gm_pool="on")
    for block in [*ref_net.NL_2, *ref_net.NL_3]:  # a new block is the identity: give it weights to compare
        torch.nn.init.normal_(block.W[1].weight, std=0.5)
        torch.nn.init.normal_(block.W[1].bias, std=0.1)
    ours = build_model(load_config("configs/sysu_agw.toml", ["model.pretrained=none"]), 395)
    _copy_weights(ref_net, ours)
    rgb, ir = torch.randn(4, 3, 288, 144), torch.randn(4, 3, 288, 144)
    ref_net.eval(), ours.eval()
    with torch.no_grad():
        for modal, x, stem in ((1, rgb, 0), (2, ir, 1)):
            ref_pool, ref_feat = ref_net(x, x, modal)  # L2-normalised at test time
            out = ours(x, stem)
            d_pool = (torch.nn.functional.normalize(out.pooled, dim=1) - ref_pool).abs().max().item()
            d_bn = (torch.nn.functional.normalize(out.bnneck, dim=1) - ref_feat).abs().max().item()
            print(f"eval, modality {'RGB' if stem == 0 else 'IR'}: max |pooled diff| {d_pool:.2e}, "
                  f"max |BNNeck diff| {d_bn:.2e}")
    ref_net.train(), ours.train()
    ref_pool, ref_logits = ref_net(rgb, ir, 0)
    out = ours(torch.cat([rgb, ir]), torch.tensor([0] * 4 + [1] * 4))
    print(f"train (batch statistics, each stem its own modality): max |pooled diff| "
          f"{(out.pooled - ref_pool).abs().max().item():.2e}, max |logits diff| "
          f"{(out.logits - ref_logits).abs().max().item():.2e}")
    feats = torch.randn(32, 64, dtype=torch.double, requires_grad=True)
    labels = torch.arange(8).repeat_interleave(4)
    theirs, _ = ref_loss.TripletLoss_WRT()(feats, labels)
    (g_ref,) = torch.autograd.grad(theirs, feats)
    mine = weighted_regularized_triplet(feats, labels)
    (g_ours,) = torch.autograd.grad(mine, feats)
    print(f"WRT: reference {theirs.item():.12f}, msareid {mine.item():.12f}, "
          f"max |grad diff| {(g_ref - g_ours).abs().max().item():.2e}")
    ref_net.zero_grad()
    ref_net(rgb, ir, 0)[1].sum().backward()
    used = sum(p.numel() for p in ref_net.parameters() if p.grad is not None) + ref_net.bottleneck.bias.numel()
    print(f"parameters: reference (used, with the frozen BNNeck bias) {used:,}; msareid F "
          f"{sum(p.numel() for p in ours.embed.parameters()):,}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
