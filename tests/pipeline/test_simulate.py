"""Tests of the Beer-Lambert ink simulator, its calibration, CLI and demo slide."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.simulate import (
    COLOUR_NAMES,
    INK_COLOURS,
    STROKE_KINDS,
    apply_ink,
    simulate_ink,
)
from pipeline.simulate.calibration import estimate_pen_od, fit_paired_ink, optical_density
from pipeline.simulate.cli import add_parser


def _tissue_like(seed: int = 0, size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.array([230, 160, 200], np.float64)
    noise = rng.normal(0, 25, size=(size, size, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def test_simulate_same_seed_identical():
    clean = _tissue_like()
    first = simulate_ink(clean, seed=7)
    second = simulate_ink(clean, seed=7)
    assert np.array_equal(first.inked, second.inked)
    assert np.array_equal(first.density, second.density)
    assert np.array_equal(first.mask_soft, second.mask_soft)
    assert np.array_equal(first.mask, second.mask)
    assert first.params == second.params


def test_simulate_rng_equals_seed():
    clean = _tissue_like()
    from_seed = simulate_ink(clean, seed=3, colour="red", kind="circle")
    from_rng = simulate_ink(clean, rng=np.random.default_rng(3), colour="red", kind="circle")
    assert np.array_equal(from_seed.inked, from_rng.inked)


def test_simulate_different_seeds_differ():
    clean = _tissue_like()
    assert not np.array_equal(
        simulate_ink(clean, seed=1).density, simulate_ink(clean, seed=2).density
    )


@pytest.mark.parametrize("kind", STROKE_KINDS)
@pytest.mark.parametrize("colour", COLOUR_NAMES)
def test_simulate_masks_consistent(kind, colour):
    clean = _tissue_like(seed=1)
    result = simulate_ink(clean, seed=11, colour=colour, kind=kind, width_px=8.0)
    assert result.density.dtype == np.float32
    assert result.mask_soft.dtype == np.float32
    assert result.mask.dtype == np.uint8
    assert result.inked.shape == clean.shape
    assert np.array_equal(result.density > 0, result.mask_soft > 0)
    assert np.array_equal(
        result.mask, (result.mask_soft > result.params["mask_threshold"]).astype(np.uint8)
    )
    assert result.mask_soft.min() >= 0.0
    assert result.mask_soft.max() <= 1.0 + 1e-6
    assert result.params["colour"] == colour


@pytest.mark.parametrize("kind", STROKE_KINDS)
def test_simulate_unchanged_outside_mask(kind):
    clean = _tissue_like(seed=2)
    result = simulate_ink(clean, seed=5, kind=kind)
    outside = result.density == 0
    assert outside.any()
    assert np.array_equal(result.inked[outside], clean[outside])


def test_simulate_darkens_inside_mask():
    clean = np.full((64, 64, 3), 240, np.uint8)
    result = simulate_ink(clean, seed=0, colour="black", kind="line", width_px=20.0)
    inside = result.mask.astype(bool)
    assert inside.any()
    assert (result.inked[inside].astype(int) <= 240).all()
    assert result.inked[inside].mean() < 200


def test_apply_ink_is_beer_lambert():
    clean = np.full((4, 4, 3), 200, np.uint8)
    density = np.full((4, 4), 0.5, np.float32)
    od = np.broadcast_to(np.array([0.6, 0.2, 0.0], np.float32), (4, 4, 3)).copy()
    inked = apply_ink(clean, density, od)
    expected = np.rint(200 * 10 ** (-0.5 * np.array([0.6, 0.2, 0.0]))).astype(np.uint8)
    assert np.array_equal(inked[0, 0], expected)


def test_simulate_needs_seed_or_rng():
    clean = _tissue_like()
    with pytest.raises(ValueError, match="exactly one"):
        simulate_ink(clean)
    with pytest.raises(ValueError, match="exactly one"):
        simulate_ink(clean, seed=1, rng=np.random.default_rng(1))


def test_simulate_rejects_bad_inputs():
    with pytest.raises(ValueError, match="uint8"):
        simulate_ink(np.zeros((8, 8), np.uint8), seed=0)
    with pytest.raises(ValueError, match="unknown ink colour"):
        simulate_ink(_tissue_like(), seed=0, colour="purple")
    with pytest.raises(ValueError, match="unknown stroke kind"):
        simulate_ink(_tissue_like(), seed=0, kind="spiral")


def test_calibrated_colours_sane():
    blue = INK_COLOURS["blue"].od_rgb
    assert blue[0] > blue[1] > blue[2] > 0
    red = INK_COLOURS["red"].od_rgb
    assert red[1] > red[2] > red[0] > 0
    green = INK_COLOURS["green"].od_rgb
    assert green[0] > green[2] > 0
    assert green[0] > green[1] > 0
    black = INK_COLOURS["black"].od_rgb
    assert min(black) > 0.8


def test_blue_calibration_near_reported_median():
    # Real blue pairs add about 0.5, 0.2 and 0.03 OD; the x=39952 pairs are denser.
    blue = INK_COLOURS["blue"].od_rgb
    ratio_green = blue[1] / blue[0]
    ratio_blue = blue[2] / blue[0]
    assert 0.3 < ratio_green < 0.5
    assert 0.03 < ratio_blue < 0.1
    assert 0.4 < blue[0] < 0.8


def test_fit_paired_ink_recovers_known_od():
    rng = np.random.default_rng(0)
    clean = rng.integers(120, 250, size=(32, 32, 3)).astype(np.uint8)
    od = np.array([0.6, 0.25, 0.04])
    inked = np.clip(np.rint(clean * 10 ** (-od)), 0, 255).astype(np.uint8)
    fit = fit_paired_ink([(clean, inked)])
    assert np.allclose(fit.od_rgb, od, atol=0.02)
    assert fit.residual_od_rms_per_pixel_density < 0.02


def test_estimate_pen_od_on_synthetic_stroke():
    image = np.full((120, 120, 3), 240, np.uint8)
    mask = np.zeros((120, 120), bool)
    mask[40:80, 20:100] = True
    od = np.array([0.1, 0.8, 0.6])
    image[mask] = np.rint(240 * 10 ** (-od)).astype(np.uint8)
    fit = estimate_pen_od(image, mask)
    assert np.allclose(fit.od_rgb, od, atol=0.02)


def test_optical_density_of_white_is_zero():
    assert optical_density(np.array([[255, 255, 255]], np.uint8)).max() == 0.0


def test_calibration_matches_stored_colours(shared_data):
    from pipeline.simulate.calibration import calibrate_from_data

    fits = calibrate_from_data(shared_data)
    assert [name.split("_")[1] for name in fits["blue"]["pairs"]] == ["x39952"] * 8
    for colour in COLOUR_NAMES:
        measured = np.asarray(fits[colour]["od_rgb"])
        assert np.allclose(measured, INK_COLOURS[colour].od_rgb, atol=0.005), colour


def _simulate_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="inkremove")
    add_parser(parser.add_subparsers())
    return parser.parse_args(["simulate", *argv])


def test_simulate_cli_writes_samples(tmp_path):
    source = tmp_path / "clean.png"
    Image.fromarray(_tissue_like(size=80)).save(source)
    out = tmp_path / "out"
    args = _simulate_args(
        [str(source), "-o", str(out), "--seed", "4", "--count", "2", "--colour", "green"]
    )
    assert args.func(args) == 0

    for index in range(2):
        stem = out / f"clean-sim{index:03d}"
        inked = np.asarray(Image.open(f"{stem}.png"))
        mask = np.asarray(Image.open(f"{stem}-mask.png"))
        soft = np.asarray(Image.open(f"{stem}-soft.png"))
        density = np.load(f"{stem}-density.npy")
        params = json.loads(Path(f"{stem}.json").read_text())
        assert inked.shape == (80, 80, 3)
        assert set(np.unique(mask)) <= {0, 255}
        assert soft.dtype == np.uint16
        assert density.shape == (80, 80)
        assert params["colour"] == "green"
        assert params["sample"] == index


def test_simulate_cli_same_seed_same_files(tmp_path):
    source = tmp_path / "clean.png"
    Image.fromarray(_tissue_like(size=64)).save(source)
    for name in ("a", "b"):
        args = _simulate_args([str(source), "-o", str(tmp_path / name), "--seed", "9"])
        assert args.func(args) == 0
    assert (tmp_path / "a" / "clean-sim000.png").read_bytes() == (
        tmp_path / "b" / "clean-sim000.png"
    ).read_bytes()


def test_simulate_cli_rejects_unreadable_input(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    args = _simulate_args([str(bad), "-o", str(tmp_path / "out")])
    assert args.func(args) == 2


def test_demo_slide_is_pyramidal_bigtiff(shared_data, tmp_path):
    import openslide
    import tifffile

    output = tmp_path / "demo-inked-slide.tiff"
    args = _simulate_args(
        ["--demo-slide", str(shared_data / "slides" / "cmu-1-small-region.svs"), "-o", str(output)]
    )
    assert args.func(args) == 0

    with tifffile.TiffFile(output) as tiff:
        assert tiff.is_bigtiff
        pages = list(tiff.pages)
        assert pages[0].shape == (2967, 2220, 3)
        assert "simulated=true" in pages[0].description
        for index, page in enumerate(pages):
            assert page.is_tiled
            assert page.tilewidth == 256
            assert page.compression == tifffile.COMPRESSION.JPEG
            assert page.subfiletype == (0 if index == 0 else 1)
        assert max(pages[-1].shape[:2]) <= 256

    with openslide.OpenSlide(str(output)) as slide:
        assert slide.dimensions == (2220, 2967)
        assert slide.level_count == len(pages)
        assert float(slide.properties[openslide.PROPERTY_NAME_MPP_X]) == pytest.approx(
            0.499, abs=1e-4
        )

    record = json.loads(output.with_name("demo-inked-slide.json").read_text())
    assert [mark["colour"] for mark in record["marks"]] == ["green", "blue", "black", "red"]
    mask = np.asarray(Image.open(output.with_name("demo-inked-slide-mask.png")))
    assert mask.shape == (2967, 2220)
    assert 0.01 < (mask > 0).mean() < 0.5
