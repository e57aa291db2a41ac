"""Wiring of the objective, the optimiser and extraction: each test fails under a named bug.

- generated images detached before F (the feature losses would not reach ISA);
- the R2I or I2R pairing swapped (source and target exchanged);
- the triplet fed BNNeck features, or the ID loss fed pooled features;
- the labels of the generated blocks in the wrong order (``repeat_interleave`` for ``repeat``);
- ISA parameters missing from the optimiser, or the learning rate of ``lr_at`` not reaching it;
- flip averaging returning one view only; extraction not in eval mode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from msareid.config import LossConfig
from msareid.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from msareid.engine import train
from msareid.inference import extract
from msareid.losses.feature import multi_modality_triplet
from msareid.losses.image import ssl_loss, ssl_plus_loss
from msareid.models import EmbeddingNet, MSANet
from msareid.recipes import load_config
from msareid.systems.base import Batch
from msareid.systems.objective import msa_losses
from msareid.training.checkpoint import load_checkpoint
from msareid.training.schedule import lr_at


def _model(space: str = "normalized", init: str = "default", **kw) -> MSANet:
    torch.manual_seed(1)
    return MSANet(EmbeddingNet("tiny", 4), isa_init=init, isa_space=space, pixel_mean=IMAGENET_MEAN,
                  pixel_std=IMAGENET_STD, **kw)


def _batch(ids: int = 3, k: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(ids).repeat_interleave(k)  # RGB sample i and IR sample i share labels[i]
    return torch.randn(ids * k, 3, 32, 16, generator=g), torch.randn(ids * k, 3, 32, 16, generator=g), labels


@pytest.mark.parametrize("losses", [("none", "none"), ("ssl_plus", "ssl")])
def test_feature_losses_reach_the_isa_parameters(losses: tuple[str, str]) -> None:
    """With L_id + L_mmtri alone (B + ISA) ISA still learns: F's losses flow back through X_a."""
    model = _model()
    rgb, ir, labels = _batch()
    terms = msa_losses(model, Batch(rgb, ir, labels), LossConfig(source_loss=losses[0], target_loss=losses[1]))
    (terms["id"] + terms["triplet"]).backward()
    for adapter in (model.r2i, model.i2r):
        for p in adapter.parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize("space", ["normalized", "unit"])
def test_each_adapter_pairs_its_own_source_and_target(space: str) -> None:
    """Algorithm 1: R2I has source RGB and target IR; I2R has source IR and target RGB."""
    model = _model(space)
    rgb, ir, labels = _batch()
    t = msa_losses(model, Batch(rgb, ir, labels))
    rgb_s, ir_s = model.to_isa_space(rgb), model.to_isa_space(ir)
    r2i, i2r = model.r2i(rgb_s), model.i2r(ir_s)
    assert torch.allclose(t["img.target_r2i"], ssl_loss(ir_s, r2i))
    assert torch.allclose(t["img.source_r2i"], ssl_plus_loss(rgb_s, r2i))
    assert torch.allclose(t["img.target_i2r"], ssl_loss(rgb_s, i2r))
    assert torch.allclose(t["img.source_i2r"], ssl_plus_loss(ir_s, i2r))
    # the swapped pairings give other values, so the checks above can tell them apart
    assert not torch.allclose(ssl_loss(ir_s, r2i), ssl_loss(rgb_s, r2i))
    assert not torch.allclose(ssl_loss(rgb_s, i2r), ssl_loss(ir_s, i2r))


@pytest.mark.parametrize("space", ["normalized", "unit"])
def test_triplet_on_pooled_id_on_bnneck_logits_with_block_labels(space: str) -> None:
    """F's batch is [RGB, IR, R2I, I2R], labels repeated block by block; the triplet sees the pooled
    (pre-BNNeck) feature, the ID loss the classifier of the BNNeck feature."""
    model = _model(space)
    rgb, ir, labels = _batch()
    terms = msa_losses(model, Batch(rgb, ir, labels), LossConfig(margin=0.5))
    r2i = model.from_isa_space(model.r2i(model.to_isa_space(rgb)))
    i2r = model.from_isa_space(model.i2r(model.to_isa_space(ir)))
    images = torch.cat([rgb, ir, r2i, i2r])
    block_labels = torch.cat([labels, labels, labels, labels])
    pooled = model.embed.pool(model.embed.backbone(images)).flatten(1)
    logits = model.embed.classifier(model.embed.bnneck(pooled))
    assert torch.allclose(terms["triplet"], multi_modality_triplet(pooled, block_labels, 0.5), atol=1e-6)
    assert torch.allclose(terms["id"], F.cross_entropy(logits, block_labels), atol=1e-6)
    # the named bugs would give other values
    interleaved = labels.repeat_interleave(4)
    assert not torch.allclose(F.cross_entropy(logits, interleaved), terms["id"])
    assert not torch.allclose(multi_modality_triplet(model.embed.bnneck(pooled), block_labels, 0.5),
                              terms["triplet"])


def test_unit_space_maps_back_exactly_and_dirac_isa_is_the_identity_in_both_spaces() -> None:
    rgb, ir, _ = _batch()
    for space in ("normalized", "unit"):
        model = _model(space, init="dirac")
        back = model.from_isa_space(model.to_isa_space(rgb))
        assert torch.allclose(back, rgb, atol=1e-6)
        out = model.from_isa_space(model.r2i(model.to_isa_space(rgb)))
        assert torch.allclose(out[..., 1:-1, 1:-1], rgb[..., 1:-1, 1:-1], atol=1e-5)
    unit = _model("unit")
    assert torch.allclose(unit.to_isa_space(torch.zeros(1, 3, 2, 2))[0, :, 0, 0], torch.tensor(IMAGENET_MEAN))
    with pytest.raises(ValueError, match="pixel_mean"):
        MSANet(EmbeddingNet("tiny", 4), isa_space="unit")


def test_a_step_updates_isa_with_the_scheduled_learning_rate(synth_sysu: Path, tmp_path: Path) -> None:
    cfg = load_config("configs/tiny.toml", [
        f"data.root={synth_sysu}", f"data.cache_dir={tmp_path / 'cache'}", "data.height=32", "data.width=16",
        "train.epochs=2", "train.warmup_epochs=4", "train.max_steps_per_epoch=2", "sampler.num_ids=3",
        "sampler.num_instances=2", "train.lr=0.002",
    ])
    train(cfg, tmp_path / "run", progress=False)
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    for name in ("r2i.conv.weight", "r2i.deconv.weight", "i2r.conv.weight", "i2r.deconv.weight"):
        start = torch.zeros_like(state["model"][name])
        torch.nn.init.dirac_(start)
        assert not torch.equal(state["model"][name], start), f"{name} did not change"
    names = {n for n, p in MSANet(EmbeddingNet("tiny", 4)).named_parameters() if p.requires_grad}
    ids = [i for g in state["optimizer"]["param_groups"] for i in g["params"]]
    assert len(ids) == len(names)  # every trainable parameter, ISA's included, is optimised
    lr = state["optimizer"]["param_groups"][0]["lr"]
    assert lr == pytest.approx(lr_at(1, 0.002, 4, [25, 35], 0.1)) and lr != pytest.approx(0.002)


def test_flip_averages_both_views_in_eval_mode() -> None:
    model = _model()
    model.train()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 16, 3), dtype=np.uint8) for _ in range(5)]
    running = model.embed.bnneck.running_mean.clone()
    feats = extract(model, images, 32, 16, batch_size=2, flip=True)
    assert torch.equal(model.embed.bnneck.running_mean, running)  # no BN statistics were updated
    from msareid.data.transforms import test_transform

    tf = test_transform(32, 16)
    batch = torch.stack([tf(im) for im in images])
    model.eval()
    with torch.no_grad():
        one, mirrored = model(batch), model(batch.flip(-1))
        model.train()
        train_mode = model(batch)
    expected = ((one.bnneck + mirrored.bnneck) / 2).numpy()
    np.testing.assert_allclose(feats.bnneck, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(feats.pooled, ((one.pooled + mirrored.pooled) / 2).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(feats.bnneck, one.bnneck.numpy(), atol=1e-4)  # one view alone differs
    assert not np.allclose(one.bnneck.numpy(), train_mode.bnneck.numpy(), atol=1e-4)  # train mode differs


@pytest.mark.slow
def test_the_tiny_config_learns_cross_modality_matching(tmp_path: Path) -> None:
    """A learning test: 30 short epochs of configs/tiny.toml on a small synthetic set make IR -> RGB
    retrieval of the training identities far better than raw pixels. (Generalisation to unseen
    identities takes longer training: docs/evidence.md's study measures it.)"""
    from msareid.data.cache import ImageCache
    from msareid.data.records import arrays_of
    from msareid.data.synthetic import SysuSpec, write_sysu
    from msareid.data.sysu import SysuMM01
    from msareid.data.transforms import test_transform
    from msareid.eval.driver import rank_and_score

    root = write_sysu(tmp_path / "data", SysuSpec(ids=24, rgb_images=3, ir_images=3, frame_height=64))
    cfg = load_config("configs/tiny.toml", [
        f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.height=32", "data.width=16",
        "data.pad=2", "train.epochs=30", "train.warmup_epochs=1", "train.milestones=[100]", "sampler.num_ids=6",
        "sampler.num_instances=3", "train.lr=0.003", "model.r2i=false", "model.i2r=false"])
    model = train(cfg, tmp_path / "run", progress=False).model
    rgb, ir = SysuMM01(root).train()
    caches = [ImageCache.build([r.path for r in recs], 32, 16, tmp_path / "cache") for recs in (rgb, ir)]
    learned = [extract(model, c, 32, 16).bnneck for c in caches]
    tf = test_transform(32, 16)
    raw = [np.stack([tf(np.asarray(c[i])).flatten().numpy() for i in range(len(c))]) for c in caches]

    def map_ir_to_rgb(f_rgb: np.ndarray, f_ir: np.ndarray) -> float:
        return rank_and_score(f_ir, f_rgb, *arrays_of(ir), *arrays_of(rgb), SysuMM01.rules).mAP

    learned_map, raw_map = map_ir_to_rgb(*learned), map_ir_to_rgb(*raw)
    assert learned_map > raw_map + 0.15 and learned_map > 2 * raw_map, (learned_map, raw_map)
