"""Loss functions of the restoration networks."""

from __future__ import annotations

import torch
from torch.nn import functional


def _gaussian_window(size: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    coordinates = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    profile = torch.exp(-(coordinates**2) / (2 * sigma**2))
    profile = profile / profile.sum()
    window = profile[:, None] * profile[None, :]  # (size, size)
    return window.expand(channels, 1, size, size).contiguous()


def ssim(first: torch.Tensor, second: torch.Tensor, *, window_px: int = 11,
         sigma: float = 1.5) -> torch.Tensor:
    """Return the mean SSIM of two (B, C, H, W) batches in [0, 1], differentiable.

    Gaussian-weighted local statistics (Wang et al., 2004) with the usual constants
    for a data range of 1; the border where the window does not fit is left out.
    """
    channels = first.shape[1]
    window = _gaussian_window(window_px, sigma, channels, first)

    def local_mean(images: torch.Tensor) -> torch.Tensor:
        return functional.conv2d(images, window, groups=channels)

    c1, c2 = 0.01**2, 0.03**2
    mean_first, mean_second = local_mean(first), local_mean(second)
    variance_first = local_mean(first * first) - mean_first**2
    variance_second = local_mean(second * second) - mean_second**2
    covariance = local_mean(first * second) - mean_first * mean_second
    index = ((2 * mean_first * mean_second + c1) * (2 * covariance + c2)) / (
        (mean_first**2 + mean_second**2 + c1) * (variance_first + variance_second + c2))
    return index.mean()


def least_squares_gan_loss(scores: torch.Tensor, *, real: bool) -> torch.Tensor:
    """Return the LSGAN loss: mean squared distance of the scores from 1 (real) or 0 (fake)."""
    target = torch.ones_like(scores) if real else torch.zeros_like(scores)
    return functional.mse_loss(scores, target)
