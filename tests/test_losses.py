"""Each equation against a literal implementation written here."""

import math

import pytest
import torch
import torch.nn.functional as F

from msareid.losses.feature import euclidean_distances, id_loss, multi_modality_triplet
from msareid.losses.image import gaussian_window, isq, local_mean, ssl_loss, ssl_plus_loss


def _literal_window(size: int, sigma: float) -> list[list[float]]:
    c = (size - 1) / 2
    g = [math.exp(-((i - c) ** 2) / (2 * sigma**2)) for i in range(size)]
    total = sum(g)
    return [[g[i] * g[j] / total**2 for j in range(size)] for i in range(size)]


def _literal_local_mean(x: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Eq. 3 pixel by pixel: the window centred on each pixel, zero outside the image."""
    w = _literal_window(size, sigma)
    b, c, h, wd = x.shape
    out = torch.zeros_like(x)
    r = size // 2
    for n in range(b):
        for ch in range(c):
            for i in range(h):
                for j in range(wd):
                    acc = 0.0
                    for di in range(-r, r + 1):
                        for dj in range(-r, r + 1):
                            if 0 <= i + di < h and 0 <= j + dj < wd:
                                acc += w[di + r][dj + r] * float(x[n, ch, i + di, j + dj])
                    out[n, ch, i, j] = acc
    return out


def test_gaussian_window_is_normalised_and_symmetric() -> None:
    w = gaussian_window(11, 1.5, channels=2)
    assert w.shape == (2, 1, 11, 11)
    assert torch.allclose(w.sum(dim=(2, 3)), torch.ones(2, 1))
    assert torch.allclose(w, w.transpose(2, 3)) and torch.allclose(w, w.flip(2))
    assert torch.allclose(w[0, 0].double(), torch.tensor(_literal_window(11, 1.5), dtype=torch.float64), atol=1e-7)


def test_ssl_equals_the_literal_equations() -> None:
    torch.manual_seed(0)
    t, a = torch.randn(2, 3, 7, 6, dtype=torch.float64), torch.randn(2, 3, 7, 6, dtype=torch.float64)
    size, sigma = 5, 1.5
    mu_t, mu_a = _literal_local_mean(t, size, sigma), _literal_local_mean(a, size, sigma)
    var_t = _literal_local_mean(t * t, size, sigma) - mu_t**2
    var_a = _literal_local_mean(a * a, size, sigma) - mu_a**2
    cov = _literal_local_mean(t * a, size, sigma) - mu_t * mu_a
    d_mu = (mu_t - mu_a) ** 2  # Eq. 5
    d_sigma = var_t + var_a - 2 * cov  # Eq. 6
    expected = (d_mu + d_sigma).mean()  # Eq. 4, averaged over pixels and batch as well
    assert torch.allclose(ssl_loss(t, a, size, sigma), expected)
    # the gradient that trains ISA is the equations' gradient too, with the local means as
    # filterings (local_mean equals the literal loop, below); window larger than the image as well
    for size in (5, 11):
        a1, a2 = a.clone().requires_grad_(), a.clone().requires_grad_()
        ssl_loss(t, a1, size, sigma).backward()
        window = gaussian_window(size, sigma, 3, torch.float64)
        mu_t, mu_a = local_mean(t, window), local_mean(a2, window)
        eq = ((mu_t - mu_a) ** 2 + local_mean(t * t, window) - mu_t**2 + local_mean(a2 * a2, window) - mu_a**2
              - 2 * (local_mean(t * a2, window) - mu_t * mu_a)).mean()
        eq.backward()
        assert torch.allclose(a1.grad, a2.grad)


def test_ssl_is_the_gaussian_weighted_local_mean_of_the_squared_difference() -> None:
    torch.manual_seed(1)
    t, a = torch.randn(3, 3, 20, 12, dtype=torch.float64), torch.randn(3, 3, 20, 12, dtype=torch.float64)
    window = gaussian_window(11, 1.5, 3, torch.float64)
    assert torch.allclose(ssl_loss(t, a), local_mean((t - a) ** 2, window).mean())
    assert ssl_loss(t, t).abs().item() < 1e-12


def test_isq_matches_local_mean_and_std() -> None:
    torch.manual_seed(2)
    x = torch.rand(1, 3, 6, 5, dtype=torch.float64)
    mu, sigma = isq(x, 5, 1.0)
    lit_mu = _literal_local_mean(x, 5, 1.0)
    assert torch.allclose(mu, lit_mu)
    assert torch.allclose(sigma**2, (_literal_local_mean(x * x, 5, 1.0) - lit_mu**2).clamp_min(0))


def test_ssl_plus_is_the_mean_absolute_difference() -> None:
    s, a = torch.tensor([[[[1.0, -2.0], [0.5, 0.0]]]]), torch.tensor([[[[0.0, 1.0], [0.5, 2.0]]]])
    assert ssl_plus_loss(s, a).item() == pytest.approx((1 + 3 + 0 + 2) / 4)


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        ssl_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))


def _literal_triplet(x: torch.Tensor, y: torch.Tensor, margin: float) -> torch.Tensor:
    losses = []
    for i in range(len(y)):
        pos = [torch.dist(x[i], x[j]) for j in range(len(y)) if y[j] == y[i]]
        neg = [torch.dist(x[i], x[j]) for j in range(len(y)) if y[j] != y[i]]
        losses.append(torch.clamp(max(pos) - min(neg) + margin, min=0))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("seed", range(5))
def test_triplet_equals_a_per_anchor_loop(seed: int) -> None:
    torch.manual_seed(seed)
    x = torch.randn(24, 8, dtype=torch.float64)
    y = torch.arange(6).repeat(4)  # 6 ids x 4 modalities, as a batch of MSA
    assert torch.allclose(multi_modality_triplet(x, y, 0.5), _literal_triplet(x, y, 0.5), atol=1e-6)


def test_triplet_ignores_modality_and_is_zero_when_separated() -> None:
    x = torch.tensor([[0.0], [0.1], [10.0], [10.1]])
    assert multi_modality_triplet(x, torch.tensor([0, 0, 1, 1]), 0.5).item() == 0.0
    assert multi_modality_triplet(x, torch.tensor([0, 1, 0, 1]), 0.5).item() > 9


def test_distances_and_id_loss() -> None:
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert torch.allclose(euclidean_distances(x), torch.tensor([[0.0, 5.0], [5.0, 0.0]]), atol=1e-5)
    logits, y = torch.randn(5, 7), torch.tensor([0, 1, 2, 3, 4])
    assert torch.allclose(id_loss(logits, y), F.cross_entropy(logits, y))
