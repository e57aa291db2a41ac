"""Image-level losses of the style similarity constraint (SSC, section 3.2).

ISQ (Eq. 2-3) quantifies the style of an image by a Gaussian-windowed local mean and (co)variance
per channel, as in SSIM (window 11 x 11, sigma 1.5, zero padding so maps keep the image size):
``mu = G * x``, ``var = G * (x x) - mu^2``, ``cov(t, a) = G * (t a) - mu_t mu_a``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=16)
def _gaussian_1d(window_size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(window_size, dtype=torch.float64) - (window_size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def gaussian_window(window_size: int = 11, sigma: float = 1.5, channels: int = 3,
                    dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
    """A normalised 2-D Gaussian window G, one per channel: (channels, 1, size, size)."""
    g = _gaussian_1d(window_size, float(sigma))
    window = torch.outer(g, g).to(dtype=dtype, device=device)
    return window.expand(channels, 1, window_size, window_size).contiguous()


def local_mean(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """G * x: the Gaussian-weighted local mean of each channel (Eq. 3), same size as ``x``.

    ``window`` is the 2-D window of :func:`gaussian_window`; being an outer product, it is applied
    as a row pass and a column pass (11 + 11 instead of 121 multiply-adds per pixel), with the same
    zero padding as the 2-D convolution.
    """
    c, size = x.shape[1], window.shape[-1]
    column = window[:, :, :, size // 2 : size // 2 + 1]  # G[:, centre] = g * g[centre]
    g = column / column.sum(dim=2, keepdim=True)  # the 1-D Gaussian g, one per channel: (C, 1, size, 1)
    x = F.conv2d(x, g, padding=(size // 2, 0), groups=c)
    return F.conv2d(x, g.transpose(2, 3), padding=(0, size // 2), groups=c)


def isq(x: torch.Tensor, window_size: int = 11, sigma: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Image style quantification (Eq. 2): local mean mu and local standard deviation sigma maps."""
    window = gaussian_window(window_size, sigma, x.shape[1], x.dtype, x.device)
    mu = local_mean(x, window)
    var = local_mean(x * x, window) - mu * mu
    return mu, var.clamp_min(0).sqrt()


def ssl_loss(target: torch.Tensor, adapted: torch.Tensor, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """L_SSL (Eq. 4-6) between target X_t and adapted X_a, averaged over batch, channels and pixels.

    ``(mu_t - mu_a)^2`` (Eq. 5) plus ``sigma_t^2 + sigma_a^2 - 2 cov_ta`` (Eq. 6), the local
    statistics of ISQ (Eq. 2-3) with the Gaussian window. Algebraically this is the Gaussian-weighted
    local mean of ``(t - a)^2``, whose image mean is computed directly (see :func:`_ssl`).
    """
    if target.shape != adapted.shape:
        raise ValueError(f"target {tuple(target.shape)} and adapted {tuple(adapted.shape)} differ in shape")
    with torch.autocast(target.device.type, enabled=False):  # variances cancel badly in float16
        dtype = torch.promote_types(target.dtype, torch.float32)  # float16 -> float32, float64 stays
        return _ssl(target.to(dtype), adapted.to(dtype), window_size, sigma)


def _ssl(target: torch.Tensor, adapted: torch.Tensor, window_size: int, sigma: float) -> torch.Tensor:
    """Eq. 4-6 summed per pixel is ``G * (t - a)^2`` (the variances and the covariance expand into
    it), and the mean over the image of a zero-padded Gaussian filtering is a weighted mean: pixel
    q counts ``w(q)``, the part of the window centred on it that falls inside the image (1 inside,
    less within ``window_size // 2`` of a border). So the loss is one weighted mean of the squared
    difference, exactly equal to the five local means of Eq. 2-6 averaged (a test checks it against
    the literal equations), at the cost of a subtraction instead of five filterings."""
    weight = coverage_weights(target.shape[-2], target.shape[-1], window_size, sigma, target.dtype, target.device)
    return ((target - adapted) ** 2 * weight).mean()


def coverage_weights(height: int, width: int, window_size: int = 11, sigma: float = 1.5,
                     dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
    """``w(y, x)``: the sum of the normalised Gaussian window centred at (y, x) over the image's
    pixels, an H x W map (separable: the product of the 1-D sums along each axis)."""
    return _coverage(height, width, window_size, float(sigma), dtype, str(device))


@functools.lru_cache(maxsize=32)
def _coverage(height: int, width: int, window_size: int, sigma: float, dtype: torch.dtype,
              device: str) -> torch.Tensor:
    g = _gaussian_1d(window_size, sigma)
    r = window_size // 2

    def along(n: int) -> torch.Tensor:
        inside = torch.zeros(n + 2 * r, dtype=torch.float64)
        inside[r : r + n] = 1.0  # the image's pixels on a zero-padded line
        return torch.stack([(inside[i : i + window_size] * g).sum() for i in range(n)])

    return torch.outer(along(height), along(width)).to(dtype=dtype, device=device)


def ssl_plus_loss(source: torch.Tensor, adapted: torch.Tensor) -> torch.Tensor:
    """L_SSL+ (Eq. 7-8): IS+_x = x, so the mean absolute difference between X_s and X_a."""
    if source.shape != adapted.shape:
        raise ValueError(f"source {tuple(source.shape)} and adapted {tuple(adapted.shape)} differ in shape")
    dtype = torch.promote_types(source.dtype, torch.float32)
    return (source.to(dtype) - adapted.to(dtype)).abs().mean()


PAIR_LOSSES = ("ssl", "ssl_plus", "none")


def pair_loss(name: str, reference: torch.Tensor, adapted: torch.Tensor, window_size: int = 11,
              sigma: float = 1.5) -> torch.Tensor | None:
    """The loss ``name`` (ssl, ssl_plus or none) of one (reference, adapted) pair; None for none."""
    if name == "ssl":
        return ssl_loss(reference, adapted, window_size, sigma)
    if name == "ssl_plus":
        return ssl_plus_loss(reference, adapted)
    if name == "none":
        return None
    raise ValueError(f"pair loss must be one of {PAIR_LOSSES}, got {name!r}")
