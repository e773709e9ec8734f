"""Image-quality metrics for restored tiles, computed on float arrays.

Every metric converts its inputs to float64 before any arithmetic, because subtracting
two uint8 arrays wraps around (0 - 255 gives 1) and makes a black tile and a white tile
look almost identical.

Conventions shared by all functions:

- Images are (H, W, 3) RGB arrays. uint8 input is scaled to [0, 1] by dividing by 255;
  float input must already be in [0, 1]. The data range is therefore 1.0 everywhere.
- Masks are (H, W) arrays; a pixel belongs to the mask where the value is non-zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from skimage.metrics import structural_similarity

DATA_RANGE = 1.0

# ITU-R BT.601 luma weights, the usual choice for VIF on colour images.
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class RestorationScores:
    """All scores of one restored image against its clean reference."""

    psnr_db: float
    psnr_ink_db: float
    ssim: float
    vif: float
    outside_max_abs: float
    outside_mean_abs: float

    def to_dict(self) -> dict[str, float]:
        """Return the scores as a plain dict for JSON reports."""
        return asdict(self)


def to_float(image: NDArray[np.generic]) -> NDArray[np.float64]:
    """Return the image as float64 in [0, 1], scaling uint8 by 1/255."""
    array = np.asarray(image)
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255.0
    if np.issubdtype(array.dtype, np.floating):
        low, high = float(array.min(initial=0.0)), float(array.max(initial=0.0))
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"float image values must lie in [0, 1], got [{low:.4g}, {high:.4g}]; "
                "pass uint8 or rescale first"
            )
        return array.astype(np.float64)
    raise TypeError(f"unsupported image dtype {array.dtype}; expected uint8 or float")


def psnr(reference: NDArray[np.generic], restored: NDArray[np.generic],
         mask: NDArray[np.generic] | None = None) -> float:
    """Return the PSNR in dB over the whole image, or over the mask's pixels only.

    Identical inputs give infinity. With a mask that selects no pixel the result is NaN,
    because there is nothing to compare.
    """
    reference_f, restored_f = _pair(reference, restored)
    squared_error = (reference_f - restored_f) ** 2  # (H, W, C)
    if mask is not None:
        selected = _mask_bool(mask, reference_f.shape)
        if not selected.any():
            return float("nan")
        squared_error = squared_error[selected]
    mse = float(squared_error.mean())
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(DATA_RANGE**2 / mse))


def ssim(reference: NDArray[np.generic], restored: NDArray[np.generic]) -> float:
    """Return the mean SSIM with an 11x11 Gaussian window, sigma 1.5 (Wang et al. 2004).

    Channels are scored separately and averaged. Population (not sample) covariance and
    K1 = 0.01, K2 = 0.03 follow the original paper.
    """
    reference_f, restored_f = _pair(reference, restored)
    return float(
        structural_similarity(
            reference_f,
            restored_f,
            data_range=DATA_RANGE,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


def vif(reference: NDArray[np.generic], restored: NDArray[np.generic],
        *, noise_variance: float = 2.0) -> float:
    """Return pixel-domain VIF (VIFp, Sheikh and Bovik 2006) on luminance.

    Luminance is scaled to 0-255 before scoring, because the model's visual-noise variance
    of 2.0 was chosen for that scale. Four scales; each halves the resolution after a
    Gaussian low-pass.
    """
    reference_f, restored_f = _pair(reference, restored)
    reference_luma = (reference_f @ _LUMA_WEIGHTS) * 255.0  # (H, W)
    restored_luma = (restored_f @ _LUMA_WEIGHTS) * 255.0
    numerator = 0.0
    denominator = 0.0
    for scale in range(4):
        # The window shrinks with each scale: N = 2^(4 - scale) + 1, sigma = N / 5.
        window = 2 ** (4 - scale) + 1
        sigma = window / 5.0
        if scale > 0:
            reference_luma = ndimage.gaussian_filter(reference_luma, sigma, truncate=2.0)[::2, ::2]
            restored_luma = ndimage.gaussian_filter(restored_luma, sigma, truncate=2.0)[::2, ::2]
        if min(reference_luma.shape) < window:
            break
        info_restored, info_reference = _vif_scale(reference_luma, restored_luma, sigma,
                                                   noise_variance)
        numerator += info_restored
        denominator += info_reference
    if denominator == 0.0:
        # A flat reference carries no information; identical flat images score 1.
        return 1.0 if np.array_equal(reference_f, restored_f) else 0.0
    return float(numerator / denominator)


def outside_mask_change(original: NDArray[np.generic], restored: NDArray[np.generic],
                        mask: NDArray[np.generic]) -> tuple[float, float]:
    """Return the (max, mean) absolute change on the 0-255 scale outside the mask.

    A restoration that keeps its promise leaves every pixel outside the ink untouched,
    so both values are 0 for lossless output.
    """
    original_f, restored_f = _pair(original, restored)
    outside = ~_mask_bool(mask, original_f.shape)
    if not outside.any():
        return 0.0, 0.0
    difference = np.abs(original_f - restored_f)[outside] * 255.0
    return float(difference.max()), float(difference.mean())


def score_restoration(clean: NDArray[np.generic], inked: NDArray[np.generic],
                      restored: NDArray[np.generic], *, ink_mask: NDArray[np.generic],
                      allowed_mask: NDArray[np.generic] | None = None) -> RestorationScores:
    """Score one restored image against its clean reference and its inked input.

    ``ink_mask`` is where the ink truly is: PSNR inside the ink is measured there.
    ``allowed_mask`` is the mask the method was given, outside which it must not change
    anything; it defaults to ``ink_mask``.
    """
    changed_max, changed_mean = outside_mask_change(
        inked, restored, ink_mask if allowed_mask is None else allowed_mask)
    return RestorationScores(
        psnr_db=psnr(clean, restored),
        psnr_ink_db=psnr(clean, restored, ink_mask),
        ssim=ssim(clean, restored),
        vif=vif(clean, restored),
        outside_max_abs=changed_max,
        outside_mean_abs=changed_mean,
    )


def _vif_scale(reference: NDArray[np.float64], restored: NDArray[np.float64],
               sigma: float, noise_variance: float) -> tuple[float, float]:
    """Return the information (restored, reference) carried at one scale."""

    def local_mean(image: NDArray[np.float64]) -> NDArray[np.float64]:
        return ndimage.gaussian_filter(image, sigma, truncate=2.0)

    mu_reference = local_mean(reference)
    mu_restored = local_mean(restored)
    var_reference = np.maximum(local_mean(reference * reference) - mu_reference**2, 0.0)
    var_restored = np.maximum(local_mean(restored * restored) - mu_restored**2, 0.0)
    covariance = local_mean(reference * restored) - mu_reference * mu_restored

    # The distortion channel is restored = gain * reference + noise, fitted locally.
    eps = 1e-10
    gain = covariance / (var_reference + eps)
    noise = var_restored - gain * covariance

    # Where the reference is flat the gain is undefined: all of the restored variance
    # counts as noise.
    flat = var_reference < eps
    gain = np.where(flat, 0.0, gain)
    noise = np.where(flat, var_restored, noise)
    var_reference = np.where(flat, 0.0, var_reference)

    # Where the restored image is flat, nothing of the reference survives.
    dead = var_restored < eps
    gain = np.where(dead, 0.0, gain)
    noise = np.where(dead, 0.0, noise)

    # A negative gain means inverted contrast; it carries no information.
    negative = gain < 0
    noise = np.where(negative, var_restored, noise)
    gain = np.where(negative, 0.0, gain)
    noise = np.maximum(noise, eps)

    info_restored = np.log10(1.0 + gain**2 * var_reference / (noise + noise_variance)).sum()
    info_reference = np.log10(1.0 + var_reference / noise_variance).sum()
    return float(info_restored), float(info_reference)


def _pair(first: NDArray[np.generic],
          second: NDArray[np.generic]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    first_f, second_f = to_float(first), to_float(second)
    if first_f.shape != second_f.shape:
        raise ValueError(f"image shapes differ: {first_f.shape} vs {second_f.shape}")
    return first_f, second_f


def _mask_bool(mask: NDArray[np.generic], image_shape: tuple[int, ...]) -> NDArray[np.bool_]:
    selected = np.asarray(mask) != 0
    if selected.shape != image_shape[:2]:
        raise ValueError(f"mask shape {selected.shape} does not match image {image_shape[:2]}")
    return selected
