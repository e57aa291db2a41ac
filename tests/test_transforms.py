import numpy as np
import pytest
import torch
from PIL import Image

from msareid.data.transforms import IMAGENET_MEAN, IMAGENET_STD, denormalize, train_transform
from msareid.data.transforms import test_transform as eval_transform


def _image(h: int = 40, w: int = 20) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_test_transform_resizes_and_normalises() -> None:
    img = np.full((50, 30, 3), 128, dtype=np.uint8)
    out = eval_transform(32, 16)(img)
    assert out.shape == (3, 32, 16) and out.dtype == torch.float32
    expected = (128 / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(out.mean(dim=(1, 2)).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(denormalize(out).mean().item(), 128 / 255, atol=1e-5)


def test_test_transform_accepts_pil_images() -> None:
    arr = _image(32, 16)
    assert torch.equal(eval_transform(32, 16)(Image.fromarray(arr)), eval_transform(32, 16)(arr))


def test_train_transform_is_random_and_reproducible_under_a_seed() -> None:
    tf = train_transform(40, 20, pad=10, erasing=0.5)
    torch.manual_seed(3)
    a = [tf(_image()) for _ in range(6)]
    torch.manual_seed(3)
    b = [tf(_image()) for _ in range(6)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert all(x.shape == (3, 40, 20) for x in a)
    assert len({x.sum().item() for x in a}) > 1


def test_pad_and_crop_shift_the_image() -> None:
    tf = train_transform(40, 20, pad=10, erasing=0.0)
    plain = eval_transform(40, 20)(_image())
    torch.manual_seed(0)
    shifted = [tf(_image()) for _ in range(20)]
    assert any(not torch.equal(s, plain) and not torch.equal(s, plain.flip(-1)) for s in shifted)
    # zero padding shows up as the normalised value of black
    black = torch.tensor([(0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]).view(3, 1, 1)
    assert any(torch.isclose(s, black.expand_as(s), atol=1e-5).all(dim=0).any() for s in shifted)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_random_erasing_probability(p: float) -> None:
    tf = train_transform(40, 20, pad=0, erasing=p)
    img = np.full((40, 20, 3), 200, dtype=np.uint8)
    torch.manual_seed(0)
    outs = [tf(img) for _ in range(10)]
    erased = [bool((o == 0).all(dim=0).any()) for o in outs]
    assert all(erased) if p == 1.0 else not any(erased)
