"""Restoration metrics checked against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.image import visual_information_fidelity

from pipeline.evaluation.metrics import (
    outside_mask_change,
    psnr,
    score_restoration,
    ssim,
    to_float,
    vif,
)


def _flat(value: int, size: int = 16) -> np.ndarray:
    return np.full((size, size, 3), value, dtype=np.uint8)


def _texture(seed: int = 0, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = rng.normal(128, 40, (size, size, 3))
    return np.clip(smooth, 0, 255).astype(np.uint8)


def test_psnr_identical_is_infinite():
    image = _texture()

    assert psnr(image, image) == math.inf


def test_psnr_one_level_difference():
    # MSE = (1/255)^2, so PSNR = 20 log10(255) = 48.1308 dB.
    assert psnr(_flat(100), _flat(101)) == pytest.approx(20 * math.log10(255), abs=1e-9)


def test_psnr_black_versus_white_is_zero():
    # uint8 subtraction would wrap 0 - 255 to 1 and report about 48 dB; the true MSE is 1.
    assert psnr(_flat(0), _flat(255)) == pytest.approx(0.0, abs=1e-12)


def test_psnr_wraparound_order_does_not_matter():
    assert psnr(_flat(255), _flat(0)) == psnr(_flat(0), _flat(255))


def test_psnr_inside_mask_only():
    reference = _flat(0, size=4)
    restored = reference.copy()
    restored[0, 0] = 255  # One wrong pixel, fully wrong in all three channels.
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[0, :2] = 1  # Two pixels: MSE = (1 + 0) / 2 = 0.5.

    assert psnr(reference, restored, mask) == pytest.approx(10 * math.log10(2), abs=1e-12)
    assert psnr(reference, restored) == pytest.approx(10 * math.log10(16), abs=1e-12)


def test_psnr_empty_mask_is_nan():
    empty = np.zeros((16, 16), dtype=np.uint8)

    assert math.isnan(psnr(_flat(1), _flat(2), empty))


def test_ssim_identical_is_one():
    image = _texture()

    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)


def test_ssim_flat_images_luminance_term():
    # With zero variance SSIM reduces to (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 * 1)^2.
    a, b = 100 / 255, 110 / 255
    c1 = 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)

    assert ssim(_flat(100, 32), _flat(110, 32)) == pytest.approx(expected, abs=1e-9)


def test_ssim_black_versus_white():
    c1 = 0.01**2
    expected = c1 / (1 + c1)

    assert ssim(_flat(0, 32), _flat(255, 32)) == pytest.approx(expected, abs=1e-9)


def test_vif_identical_is_one():
    image = _texture()

    assert vif(image, image) == pytest.approx(1.0, abs=1e-6)


def test_vif_flat_reference_identical_is_one():
    assert vif(_flat(50, 64), _flat(50, 64)) == 1.0


def test_vif_flat_restoration_of_texture_is_zero():
    assert vif(_texture(), _flat(128, 64)) == pytest.approx(0.0, abs=1e-9)


def test_vif_noise_lowers_score():
    image = _texture(size=128)
    rng = np.random.default_rng(1)
    noisy = np.clip(image + rng.normal(0, 20, image.shape), 0, 255).astype(np.uint8)

    assert 0.0 < vif(image, noisy) < 0.9


def test_vif_agrees_with_torchmetrics():
    image = _texture(size=128)
    rng = np.random.default_rng(2)
    noisy = np.clip(image + rng.normal(0, 15, image.shape), 0, 255).astype(np.uint8)
    weights = np.array([0.299, 0.587, 0.114])
    luma = lambda array: torch.tensor((array / 255.0) @ weights * 255.0)[None, None]  # noqa: E731
    reference_value = visual_information_fidelity(luma(noisy), luma(image)).item()

    assert vif(image, noisy) == pytest.approx(reference_value, abs=0.02)


def test_outside_mask_change_zero_when_only_mask_changed():
    original = _texture(size=8)
    restored = original.copy()
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[2:4, 2:4] = 255
    restored[2:4, 2:4] = 0

    assert outside_mask_change(original, restored, mask) == (0.0, 0.0)


def test_outside_mask_change_counts_levels():
    original = _flat(10, size=4)
    restored = original.copy()
    restored[3, 3] = 13  # 3 levels in every channel of one of 15 outside pixels.
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[0, 0] = 1
    maximum, mean = outside_mask_change(original, restored, mask)

    assert maximum == pytest.approx(3.0)
    assert mean == pytest.approx(3.0 / 15)


def test_to_float_rejects_out_of_range_floats():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_float(np.full((2, 2, 3), 2.0))


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(_flat(0, 4), _flat(0, 8))


def test_score_restoration_perfect():
    clean = _texture()
    inked = clean.copy()
    mask = np.zeros(clean.shape[:2], dtype=np.uint8)
    mask[10:20, 10:20] = 1
    inked[10:20, 10:20] = (0, 0, 200)
    scores = score_restoration(clean, inked, clean, ink_mask=mask)

    assert scores.psnr_db == math.inf
    assert scores.psnr_ink_db == math.inf
    assert scores.ssim == pytest.approx(1.0)
    assert scores.outside_max_abs == 0.0
