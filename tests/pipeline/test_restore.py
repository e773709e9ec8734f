import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import RunOptions
from pipeline.compose import blend_weights, compose, ink_region
from pipeline.evaluation.real_pairs import load_real_pairs
from pipeline.geometry import PixelScale
from pipeline.optical import (
    HE_REFERENCE,
    estimate_glass,
    estimate_stain_vectors,
    optical_density,
    plane_sine,
    unmix_ink,
)
from pipeline.restore import (
    fill_background,
    measure_ink_vector,
    reference_ink_vector,
    remove_ink_optical_density,
)

OPTIONS = RunOptions()
GLASS = np.array([242.0, 240.0, 241.0], dtype=np.float32)


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _psnr(first: np.ndarray, second: np.ndarray) -> float:
    error = np.mean((first.astype(np.float64) - second.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / error))


def _inked(clean: np.ndarray, mask: np.ndarray, vector: np.ndarray, amount: float) -> np.ndarray:
    """Apply Beer-Lambert ink: clean * 10 ** (-amount * vector) inside the mask."""
    transmittance = np.power(10.0, -amount * vector)  # (3,)
    inked = clean.astype(np.float64)
    inked[mask] *= transmittance
    return np.clip(np.rint(inked), 0, 255).astype(np.uint8)


def test_optical_density_of_glass_is_zero():
    pixels = np.array([[[242, 240, 241], [24, 240, 120]]], dtype=np.uint8)
    od = optical_density(pixels, GLASS)
    assert np.allclose(od[0, 0], 0.0)
    assert od[0, 1, 0] == pytest.approx(1.0, abs=0.01)


def test_glass_estimate_from_bright_grey_pixels():
    image = np.full((100, 100, 3), (200, 120, 180), dtype=np.uint8)  # pink tissue
    image[:30] = (236, 238, 240)  # glass
    assert estimate_glass(image).tolist() == [236.0, 238.0, 240.0]


def test_glass_estimate_falls_back_to_white(caplog):
    image = np.full((50, 50, 3), (200, 120, 180), dtype=np.uint8)
    with caplog.at_level(logging.WARNING, logger="pipeline.optical"):
        glass = estimate_glass(image)
    assert glass.tolist() == [255.0, 255.0, 255.0]
    assert "assuming white" in caplog.text


def test_stain_vectors_from_tissue(shared_data):
    tile = _rgb(shared_data / "clean" / "tissue-level0-4302-10273-4814-10785.png")
    vectors = estimate_stain_vectors(optical_density(tile, estimate_glass(tile)))
    assert vectors.shape == (2, 3)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0, 0] > vectors[1, 0]  # haematoxylin absorbs more red than eosin
    assert not np.allclose(vectors, HE_REFERENCE)


def test_stain_vectors_fall_back_without_tissue():
    assert np.array_equal(estimate_stain_vectors(np.zeros((10, 3))), HE_REFERENCE)


def test_unmixing_refuses_vectors_in_stain_plane():
    in_plane = (HE_REFERENCE[0] + HE_REFERENCE[1]) / np.linalg.norm(HE_REFERENCE.sum(axis=0))
    assert plane_sine(in_plane, HE_REFERENCE) < 1e-5
    assert unmix_ink(np.zeros((2, 2, 3)), in_plane, HE_REFERENCE) is None


def test_background_fill_is_glass():
    region = np.zeros((4, 5, 3), dtype=np.uint8)
    assert np.array_equal(fill_background(region, glass=GLASS), np.broadcast_to(GLASS, (4, 5, 3)))


def test_optical_density_removal_on_simulated_green(shared_data):
    clean = _rgb(shared_data / "clean" / "tissue-level0-7352-11762-7864-12274.png")
    mask = np.zeros(clean.shape[:2], dtype=bool)
    mask[:, 200:330] = True
    green = reference_ink_vector("green")
    inked = _inked(clean, mask, green, amount=0.8)
    glass = estimate_glass(clean)
    stain_vectors = estimate_stain_vectors(optical_density(clean, glass))

    restored, stats = remove_ink_optical_density(
        inked, mask, glass=glass, stain_vectors=stain_vectors, ink_vector=green,
        scale=PixelScale(0.5), options=OPTIONS)

    restored_u8 = np.rint(restored).astype(np.uint8)
    assert stats.unmixing == "three-stain"
    assert _psnr(inked[mask], clean[mask]) < 15
    assert _psnr(restored_u8[mask], clean[mask]) > 27


def test_ink_vector_measured_next_to_clean_tissue(shared_data):
    clean = _rgb(shared_data / "clean" / "tissue-level0-7352-11762-7864-12274.png")
    mask = np.zeros(clean.shape[:2], dtype=bool)
    mask[:, 200:330] = True
    green = reference_ink_vector("green")
    inked = _inked(clean, mask, green, amount=0.8)
    measured = measure_ink_vector(inked, mask, glass=estimate_glass(clean),
                                  scale=PixelScale(0.5), options=OPTIONS)
    assert measured is not None
    assert float(measured @ green) > 0.99


def test_real_blue_ink_pairs(shared_data):
    folder = shared_data / "paired-blue-ink"
    # Screening a whole slide gives its glass and stains. Here they come from the
    # calibration pairs, so the scored pairs' clean halves remain pure references.
    calibration_clean = np.concatenate(
        [pair.clean for pair in load_real_pairs(folder, "calibration")])
    glass = estimate_glass(calibration_clean)
    stain_vectors = estimate_stain_vectors(optical_density(calibration_clean, glass))
    before, after = [], []
    for pair in load_real_pairs(folder, "test"):
        restored, _ = remove_ink_optical_density(
            pair.inked, np.ones(pair.inked.shape[:2], dtype=bool), glass=glass,
            stain_vectors=stain_vectors, ink_vector=reference_ink_vector("blue"),
            scale=PixelScale(0.25), options=OPTIONS)
        before.append(_psnr(pair.inked, pair.clean))
        after.append(_psnr(np.rint(restored).astype(np.uint8), pair.clean))
    # Measured 10.3 dB before and 24.0 dB after on the 8 test pairs (float PSNR).
    assert np.mean(before) < 11
    assert np.mean(after) > 22


def test_ink_region_grows_the_mask_by_the_dilation():
    mask = np.zeros((60, 60), dtype=bool)
    mask[20:40, 20:40] = True
    region = ink_region(mask, dilation_px=3)
    assert region[mask].all()
    assert region[20, 17]
    assert not region[20, 16]
    assert not region[:, :15].any()


def test_blend_weights_inner_ramp():
    region = np.zeros((60, 60), dtype=bool)
    region[20:40, 20:40] = True
    weights = blend_weights(region, feather_px=3)
    assert (weights[~region] == 0.0).all()
    assert weights[30, 20] == 0.25  # border pixel: depth 1 of feather 3 + 1
    assert 0.25 < weights[30, 21] < weights[30, 22] < 1.0
    assert weights[30, 30] == 1.0


def test_blend_weights_treat_the_image_edge_as_inside():
    region = np.zeros((20, 20), dtype=bool)
    region[:, :10] = True
    weights = blend_weights(region, feather_px=2)
    assert weights[10, 0] == 1.0
    assert weights[10, 9] < 1.0


def test_compose_keeps_pixels_outside_the_region_exactly():
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (60, 60, 3), dtype=np.uint8)
    region = np.zeros((60, 60), dtype=bool)
    region[20:40, 20:40] = True
    weights = blend_weights(region, feather_px=3)
    result = compose(original, np.zeros((60, 60, 3), dtype=np.float32), weights)
    assert np.array_equal(result[~region], original[~region])
    assert (result[25:35, 25:35] == 0).all()


def test_blend_weights_empty_region():
    assert not blend_weights(np.zeros((5, 5), dtype=bool), feather_px=2).any()
