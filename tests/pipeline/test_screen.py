from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import RunOptions, open_slide
from pipeline.geometry import PixelScale
from pipeline.inkrules import INK_COLOURS, ink_colour_masks, ink_mask
from pipeline.screen import screen_image, screen_slide, screening_downsample

OPTIONS = RunOptions()


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _scores(found: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    hits = float((found & truth).sum())
    precision = hits / max(1.0, float(found.sum()))
    recall = hits / float(truth.sum())
    dice = 2 * hits / float(found.sum() + truth.sum())
    return precision, recall, dice


@pytest.mark.parametrize("name", [
    "slides/cmu-1-small-region.svs",
    "ink/tile-clean-lung.png",
    "clean/high-nuclei-score-level0.png",
    "clean/medium-nuclei-score-level0.png",
    "clean/very-low-nuclei-score-level0.png",
    "clean/he-source.png",
    "clean/he-target.png",
    "clean/no-tissue.png",
    "clean/almost-white-2.png",
])
def test_clean_images_have_no_candidates(shared_data, name):
    with open_slide(shared_data / name) as slide:
        result = screen_slide(slide, options=OPTIONS)
    assert result.boxes == []
    assert not result.ink_mask.any()
    assert not result.ink_found


@pytest.mark.parametrize(("name", "colour"), [
    ("ink/tcga-green-pen.png", "black"),
    ("ink/tile-green-pen-on-glass.png", "green"),
    ("ink/tile-green-pen-on-tissue.png", "green"),
    ("ink/tcga-red-pen.png", "red"),
    ("ink/tile-red-pen-on-glass.png", "red"),
    ("ink/tile-red-pen-on-sparse-tissue.png", "red"),
])
def test_inked_images_have_candidates(shared_data, name, colour):
    with open_slide(shared_data / name) as slide:
        result = screen_slide(slide, options=OPTIONS)
    assert len(result.boxes) >= 1
    assert result.colour_pixels[colour] > 0
    assert result.ink_mask.mean() > 0.1


def test_green_pen_candidate_covers_stroke(shared_data):
    with open_slide(shared_data / "ink" / "tcga-green-pen.png") as slide:
        result = screen_slide(slide, options=OPTIONS)
    box = result.boxes[0]
    # The stroke runs top to bottom between x = 150 and x = 500.
    assert box.y == 0
    assert box.bottom == 631
    assert 50 <= box.x <= 160
    assert 480 <= box.right <= 600
    vector = result.ink_vectors[0]["green"]
    assert vector[0] > vector[2] > vector[1]  # green ink absorbs red most, then blue


@pytest.mark.parametrize(("name", "min_precision", "min_recall"), [
    ("pen-green", 0.9, 0.9),
    ("pen-black", 0.95, 0.95),
    ("pen-red", 0.9, 0.55),
])
def test_thumbnail_masks_against_hand_drawn(shared_data, name, min_precision, min_recall):
    folder = shared_data / "ink" / "thumbnails-with-masks"
    thumbnail = _rgb(folder / f"{name}.png")
    with Image.open(folder / f"{name}-mask.png") as image:
        truth = np.asarray(image.convert("L")) > 0
    # The thumbnails are about 25 um per pixel (25 mm slides in about 1000 pixels).
    result = screen_image(thumbnail, scale=PixelScale(mpp=25.0), downsample=1.0,
                          options=OPTIONS)
    precision, recall, _ = _scores(result.ink_mask, truth)
    assert precision >= min_precision
    assert recall >= min_recall


def test_colour_masks_name_every_colour(shared_data):
    thumbnail = _rgb(shared_data / "ink" / "slide-thumbnail-red-green-black-pen.png")
    masks = ink_colour_masks(thumbnail, np.array([240.0, 240.0, 240.0]))
    assert set(masks) == set(INK_COLOURS)
    for colour in ("green", "black", "red"):
        assert masks[colour].mean() > 0.01
    assert ink_mask(thumbnail, np.array([240.0, 240.0, 240.0])).mean() > 0.1


def test_blue_pen_thumbnail(shared_data):
    thumbnail = _rgb(shared_data / "ink" / "slide-thumbnail-blue-pen.png")
    result = screen_image(thumbnail, scale=PixelScale(mpp=60.0), downsample=1.0,
                          options=OPTIONS)
    assert result.colour_pixels["blue"] > 300
    assert result.colour_pixels["red"] == 0


def test_glass_estimate_not_white(shared_data):
    with open_slide(shared_data / "slides" / "cmu-1-small-region.svs") as slide:
        result = screen_slide(slide, options=OPTIONS)
    assert 235 <= result.glass.min() <= result.glass.max() < 255


def test_screening_resolution(shared_data):
    with open_slide(shared_data / "slides" / "cmu-1-small-region.svs") as slide:
        result = screen_slide(slide, options=OPTIONS)
    # 8 um/px wanted, but the 2967-pixel side must stay at least 512 pixels long.
    assert result.downsample == pytest.approx(2967 / 512)
    assert result.ink_mask.shape == (512, 384)
    assert not result.scale.assumed


def test_screening_downsample_targets_mpp():
    from pipeline.io.info import SlideInfo

    info = SlideInfo(path="x", format="aperio-svs", reader="openslide", width=80_000,
                     height=60_000, level_count=1, level_downsamples=[1.0], tile_width=256,
                     tile_height=256, mpp_x=0.25, mpp_y=0.25, magnification=40.0)
    assert screening_downsample(info, PixelScale(0.25), OPTIONS) == pytest.approx(32.0)


@pytest.mark.filterwarnings("ignore:The \\(0028,0004\\) 'Photometric Interpretation'")
def test_dicom_slide_with_three_inks(shared_data):
    with open_slide(shared_data / "slides" / "small-dicom-wsi.dcm") as slide:
        result = screen_slide(slide, options=OPTIONS)
    assert len(result.boxes) == 1
    assert result.colour_pixels["green"] > 1000
    assert result.colour_pixels["blue"] > 100
    assert result.colour_pixels["black"] > 1000
    assert result.colour_pixels["red"] == 0
    assert set(result.ink_vectors[0]) == {"green", "blue", "black"}
    blue = result.ink_vectors[0]["blue"]
    assert blue[0] > blue[1] > blue[2]  # blue ink absorbs red most and blue least
