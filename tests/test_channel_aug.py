"""Channel augmentation (CAJ, ICCV 2021): each augmentation equals a literal transcription of the
reference's rule given the same random draws; the statistics of many draws match the reference's
probabilities; batches with the second RGB view are deterministic across workers and resumes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from msareid.data.cache import ImageCache
from msareid.data.dataset import ImageDataset, PairedDataset, train_loader
from msareid.data.records import label_map, labels_of
from msareid.data.sampler import CrossModalitySampler
from msareid.data.sysu import SysuMM01
from msareid.data.transforms import AdaptiveGray, ChannelExchange, ChannelRandomErasing, channel_aug_transforms
from msareid.errors import UserError
from msareid.recipes import load_config


class TorchDraws:
    """The reference's ``random.uniform`` / ``random.randint`` served from torch's generator in the
    convention msareid documents, so a literal transcription sees the draws msareid sees."""

    @staticmethod
    def uniform(a: float, b: float) -> float:
        return a + (b - a) * float(torch.rand(()))

    @staticmethod
    def randint(a: int, b: int) -> int:
        return int(torch.randint(a, b + 1, ()))


def reference_erasing(img: torch.Tensor, random: TorchDraws, probability: float = 0.5, sl: float = 0.02,
                      sh: float = 0.4, r1: float = 0.3, mean=(0.4914, 0.4822, 0.4465)) -> torch.Tensor:
    """ChannelAug.ChannelRandomErasing.__call__, line by line (in place, as there)."""
    if random.uniform(0, 1) > probability:
        return img
    for _attempt in range(100):
        area = img.size()[1] * img.size()[2]
        target_area = random.uniform(sl, sh) * area
        aspect_ratio = random.uniform(r1, 1 / r1)
        h = int(round(math.sqrt(target_area * aspect_ratio)))
        w = int(round(math.sqrt(target_area / aspect_ratio)))
        if w < img.size()[2] and h < img.size()[1]:
            x1 = random.randint(0, img.size()[1] - h)
            y1 = random.randint(0, img.size()[2] - w)
            if img.size()[0] == 3:
                img[0, x1:x1 + h, y1:y1 + w] = mean[0]
                img[1, x1:x1 + h, y1:y1 + w] = mean[1]
                img[2, x1:x1 + h, y1:y1 + w] = mean[2]
            else:
                img[0, x1:x1 + h, y1:y1 + w] = mean[0]
            return img
    return img


def reference_adapt_gray(img: torch.Tensor, random: TorchDraws, probability: float = 0.5) -> torch.Tensor:
    """ChannelAug.ChannelAdapGray.__call__, line by line."""
    idx = random.randint(0, 3)
    if idx == 0:
        img[1, :, :] = img[0, :, :]
        img[2, :, :] = img[0, :, :]
    elif idx == 1:
        img[0, :, :] = img[1, :, :]
        img[2, :, :] = img[1, :, :]
    elif idx == 2:
        img[0, :, :] = img[2, :, :]
        img[1, :, :] = img[2, :, :]
    else:
        if random.uniform(0, 1) > probability:
            img = img
        else:
            tmp_img = 0.2989 * img[0, :, :] + 0.5870 * img[1, :, :] + 0.1140 * img[2, :, :]
            img[0, :, :] = tmp_img
            img[1, :, :] = tmp_img
            img[2, :, :] = tmp_img
    return img


def reference_exchange(img: torch.Tensor, random: TorchDraws, gray: int = 2) -> torch.Tensor:
    """data_loader.ChannelExchange.__call__, line by line."""
    idx = random.randint(0, gray)
    if idx == 0:
        img[1, :, :] = img[0, :, :]
        img[2, :, :] = img[0, :, :]
    elif idx == 1:
        img[0, :, :] = img[1, :, :]
        img[2, :, :] = img[1, :, :]
    elif idx == 2:
        img[0, :, :] = img[2, :, :]
        img[1, :, :] = img[2, :, :]
    else:
        tmp_img = 0.2989 * img[0, :, :] + 0.5870 * img[1, :, :] + 0.1140 * img[2, :, :]
        img[0, :, :] = tmp_img
        img[1, :, :] = tmp_img
        img[2, :, :] = tmp_img
    return img


CASES = [
    (ChannelRandomErasing(), reference_erasing),
    (ChannelRandomErasing(p=1.0, area=(0.3, 0.9), ratio=0.2), lambda x, r: reference_erasing(x, r, 1.0, 0.3, 0.9, 0.2)),
    (AdaptiveGray(), reference_adapt_gray),
    (AdaptiveGray(0.9), lambda x, r: reference_adapt_gray(x, r, 0.9)),
    (ChannelExchange(), reference_exchange),
    (ChannelExchange(gray=3), lambda x, r: reference_exchange(x, r, 3)),
]


@pytest.mark.parametrize("ours, reference", CASES)
@pytest.mark.parametrize("shape", [(3, 24, 12), (3, 9, 30)])
def test_each_augmentation_equals_the_reference_rule_on_the_same_draws(ours, reference, shape) -> None:
    images = torch.randn(200, *shape, generator=torch.Generator().manual_seed(0))
    changed = 0
    for seed, img in enumerate(images):
        torch.manual_seed(seed)
        mine = ours(img)
        after_mine = torch.get_rng_state()
        torch.manual_seed(seed)
        theirs = reference(img.clone(), TorchDraws())
        assert torch.equal(mine, theirs), seed
        assert torch.equal(torch.get_rng_state(), after_mine)  # the same number of draws
        assert torch.equal(img, images[seed])  # the input is left as it was
        changed += not torch.equal(mine, img)
    assert changed > 20


def _frequencies(transform, n: int = 4000) -> dict[str, float]:
    img = torch.randn(3, 16, 8, generator=torch.Generator().manual_seed(1))
    gray = 0.2989 * img[0] + 0.5870 * img[1] + 0.1140 * img[2]
    counts = {"R": 0, "G": 0, "B": 0, "gray": 0, "same": 0, "erased": 0}
    torch.manual_seed(0)
    for _ in range(n):
        out = transform(img)
        if torch.equal(out, img):
            counts["same"] += 1
        elif all(torch.equal(out[c], gray) for c in range(3)):
            counts["gray"] += 1
        elif any(all(torch.equal(out[c], img[k]) for c in range(3)) for k in range(3)):
            k = next(k for k in range(3) if torch.equal(out[0], img[k]))
            counts["RGB"[k]] += 1
        else:
            counts["erased"] += 1
    return {k: v / n for k, v in counts.items()}


def test_the_reference_probabilities_over_many_draws() -> None:
    tolerance = 4 * math.sqrt(0.25 / 4000)  # four standard errors of a proportion
    gray = _frequencies(AdaptiveGray())  # R, G, B a quarter each; gray and unchanged an eighth each
    for key, expected in {"R": 0.25, "G": 0.25, "B": 0.25, "gray": 0.125, "same": 0.125}.items():
        assert abs(gray[key] - expected) < tolerance, (key, gray)
    exchange = _frequencies(ChannelExchange())  # a third each; the grayscale branch never
    assert exchange["gray"] == 0 and exchange["same"] == 0
    for key in "RGB":
        assert abs(exchange[key] - 1 / 3) < tolerance, (key, exchange)
    erased = _frequencies(ChannelRandomErasing())
    assert abs(erased["erased"] - 0.5) < tolerance and erased["erased"] + erased["same"] == 1


def test_erased_area_and_fill_follow_the_reference() -> None:
    eraser, areas = ChannelRandomErasing(p=1.0), []
    torch.manual_seed(0)
    for _ in range(500):
        out = eraser(torch.full((3, 48, 24), -5.0))
        mask = out[0] != -5.0
        assert torch.all(out[0][mask] == 0.4914) and torch.all(out[2][mask] == 0.4465)
        rows, cols = mask.any(1).nonzero().squeeze(1), mask.any(0).nonzero().squeeze(1)
        assert mask.sum() == len(rows) * len(cols)  # one rectangle
        areas.append(mask.sum().item() / (48 * 24))
    assert 0.0 < min(areas) and max(areas) < 0.5 and abs(np.mean(areas) - 0.21) < 0.03


def _dataset(root: Path, cache: Path) -> PairedDataset:
    rgb, ir = SysuMM01(root).train()
    mapping = label_map(rgb + ir)
    tf_rgb, second, tf_ir = channel_aug_transforms(32, 16, 2)
    return PairedDataset(
        ImageDataset(ImageCache.build([r.path for r in rgb], 32, 16, cache), labels_of(rgb, mapping), tf_rgb),
        ImageDataset(ImageCache.build([r.path for r in ir], 32, 16, cache), labels_of(ir, mapping), tf_ir),
        rgb_second=second)


def test_batches_with_the_second_rgb_view_are_deterministic(synth_sysu: Path, tmp_path: Path) -> None:
    data = _dataset(synth_sysu, tmp_path)
    sampler = CrossModalitySampler(data.rgb.labels, data.ir.labels, 3, 2, seed=0)
    batches = list(train_loader(data, sampler, num_workers=0))
    rgb, ir, y_rgb, y_ir, second = (batches[0][k] for k in ("rgb", "ir", "rgb_label", "ir_label", "rgb_second"))
    assert rgb.shape == ir.shape == second.shape == (6, 3, 32, 16) and torch.equal(y_rgb, y_ir)
    # the second view is channel-exchanged: one channel in all three, for every image
    assert all(torch.equal(v[0], v[1]) and torch.equal(v[1], v[2]) for v in second)
    assert not torch.equal(second, rgb)
    again = list(train_loader(data, sampler, num_workers=2))
    for a, b in zip(batches, again, strict=True):  # any number of workers: the same pixels
        assert all(torch.equal(a[k], b[k]) for k in a)
    sampler.set_epoch(0, start=2)  # a resume from batch 2 gives batches 2.. again
    resumed = list(train_loader(data, sampler, num_workers=0))
    assert all(torch.equal(a[k], b[k]) for a, b in zip(batches[2:], resumed, strict=True) for k in a)


def test_channel_aug_comes_without_the_other_erasing(tiny_overrides, synth_sysu: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="data.channel_aug = true brings its own erasing.*data.random_erasing = 0"):
        load_config("configs/tiny.toml", ["data.channel_aug=true"])
    assert load_config("configs/tiny.toml", ["data.channel_aug=true", "data.random_erasing=0"]).data.channel_aug


def test_f_sees_the_second_view_as_a_fifth_block_in_the_id_and_triplet_losses(tiny_config, synth_sysu: Path,
                                                                              tmp_path: Path) -> None:
    from msareid.config import LossConfig
    from msareid.losses.feature import id_loss, weighted_regularized_triplet
    from msareid.systems.base import Batch
    from msareid.systems.network import build_model
    from msareid.systems.objective import msa_losses

    config = tiny_config(synth_sysu, tmp_path, **{"model.two_stream": "true", "loss.triplet": "wrt"})
    torch.manual_seed(0)
    model = build_model(config, num_classes=5)
    g = torch.Generator().manual_seed(1)
    rgb, ir, second = (torch.randn(4, 3, 32, 16, generator=g) for _ in range(3))
    labels = torch.tensor([0, 0, 3, 3])
    terms = msa_losses(model, Batch(rgb, ir, labels, second), LossConfig(triplet="wrt"))
    without = msa_losses(model, Batch(rgb, ir, labels), LossConfig(triplet="wrt"))
    assert terms["img"] == without["img"]  # L_img: ISA adapts the first view only
    generated = model.adapt(rgb, ir)
    images = torch.cat([rgb, ir, generated["r2i"], generated["i2r"], second])
    out = model.embed(images, torch.tensor([0, 1, 1, 0, 0]).repeat_interleave(4))  # the second view: RGB stem
    assert torch.allclose(terms["id"], id_loss(out.logits, labels.repeat(5)))
    assert torch.allclose(terms["triplet"], weighted_regularized_triplet(out.pooled, labels.repeat(5)))
    assert not torch.allclose(terms["triplet"], without["triplet"])


@pytest.mark.slow
def test_channel_rows_run_end_to_end(synth_sysu: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import json

    from msareid.cli import main

    out = tmp_path / "ab"
    cmd = ["ablate", "--config", "configs/tiny.toml", "--rows", "channel", "--seeds", "0", "--out", str(out)]
    for s in (f"data.root={synth_sysu}", f"data.cache_dir={tmp_path / 'cache'}", "data.height=32", "data.width=16",
              "data.pad=2", "train.epochs=1", "train.max_steps_per_epoch=2", "train.warmup_epochs=1",
              "sampler.num_ids=3", "sampler.num_instances=2", "eval.trials=1"):
        cmd += ["--set", s]
    assert main(cmd + ["--dry-run", "--json"]) == 0
    planned = {p["row"]: p["settings"] for p in json.loads(capsys.readouterr().out)["runs"]}
    assert list(planned) == ["B", "B+CA", "MSA", "MSA+CA", "AGW", "AGW+CA"]
    for row in ("B", "MSA", "AGW"):  # "+CA" adds the augmentation and nothing else
        extra = {k: v for k, v in planned[f"{row}+CA"].items() if planned[row].get(k) != v}
        assert extra == {"data.channel_aug": True, "data.random_erasing": 0.0} or row == "AGW" and extra == {
            "data.channel_aug": True}
    assert main(cmd + ["--only", "MSA+CA,AGW+CA", "--jobs", "2", "--epochs", "1"]) == 0
    result = json.loads((out / "ablation.json").read_text())
    assert [r["name"] for r in result["rows"]] == ["MSA+CA", "AGW+CA"]
    assert all(r["resolved"]["data.channel_aug"] for r in result["rows"])
    assert "channel aug" in (out / "ablation.md").read_text()
    lines = [json.loads(x) for x in (out / "runs" / "MSApCA" / "seed0" / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["config"]["data"]["channel_aug"] and any(x["event"] == "step" for x in lines)
    assert main(["report", str(out)]) == 0 and (out / "report.html").is_file()
