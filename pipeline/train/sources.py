"""Clean source images for classifier training, their split, and a tissue detector.

The split is by source image, never by crop, so validation tissue was never seen in
training. Three clean images are kept out of training and validation altogether for
the simulated restoration benchmark, and every image under ``ink/`` is real ink that is
only ever used to score the trained models.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

logger = logging.getLogger(__name__)

Split = Literal["train", "validation"]

TRAIN_SOURCES: tuple[str, ...] = (
    "slides/cmu-1-small-region.svs",
    "slides/tcga-cr-7395-jp2k.svs",
    "clean/high-nuclei-score-level0.png",
    "clean/medium-nuclei-score-level0.png",
    "clean/low-nuclei-score-level0.png",
    "clean/tissue-level0-4302-10273-4814-10785.png",
    "clean/tissue-level2-1784-6289-5880-10386.png",
    "clean/no-tissue.png",
    "clean/almost-white-2.png",
)
VALIDATION_SOURCES: tuple[str, ...] = (
    "clean/very-low-nuclei-score-level0.png",
    "clean/medium-nuclei-score-level1.png",
    "clean/tissue-level2-4640-4649-8736-8746.png",
    "clean/no-tissue2.png",
)
# Clean tissue reserved for the simulated restoration benchmark: no model trains on it.
BENCHMARK_HOLDOUT: tuple[str, ...] = (
    "clean/he-source.png",
    "clean/he-target.png",
    "clean/tissue-level0-7352-11762-7864-12274.png",
)

# Tissue detector thresholds on 8-bit HSV: glass is bright and grey (S < 10, V > 220);
# stained tissue, even the thin pink membranes of fat, has S > 20 or is darker.
TISSUE_MIN_SATURATION = 20
TISSUE_MAX_VALUE = 200


@dataclass
class SourceImage:
    """A clean RGB image with its tissue mask and a summed-area table for crop statistics."""

    name: str
    rgb: NDArray[np.uint8]  # (H, W, 3)
    tissue_integral: NDArray[np.int64]  # (H + 1, W + 1) summed-area table of the tissue mask

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.rgb.shape[1])

    def tissue_fraction(self, x: int, y: int, size: int) -> float:
        """Return the fraction of tissue pixels in the square crop at (x, y)."""
        table = self.tissue_integral
        total = table[y + size, x + size] - table[y, x + size] - table[y + size, x] + table[y, x]
        return float(total) / float(size * size)


def sources_for_split(split: Split) -> tuple[str, ...]:
    """Return the source image names of a split."""
    return TRAIN_SOURCES if split == "train" else VALIDATION_SOURCES


def tissue_mask(rgb: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """Return a boolean (H, W) mask of stained tissue on an RGB H&E image.

    A 5 px median filter and a 3 px opening remove scanner colour noise and dust, which
    are single pixels on glass.
    """
    smoothed = cv2.medianBlur(rgb, 5)
    hsv = cv2.cvtColor(smoothed, cv2.COLOR_RGB2HSV)
    tissue = ((hsv[..., 1] > TISSUE_MIN_SATURATION) | (hsv[..., 2] < TISSUE_MAX_VALUE)).astype(
        np.uint8
    )
    return cv2.morphologyEx(tissue, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0


def read_rgb(path: Path) -> NDArray[np.uint8]:
    """Read a PNG/JPEG image or a whole slide at level 0 as (H, W, 3) uint8 RGB on white."""
    if path.suffix.lower() in (".svs", ".tif", ".tiff", ".ndpi", ".mrxs"):
        from pipeline.simulate.demo_slide import read_slide_level0

        rgb, _ = read_slide_level0(path)
        return rgb
    with Image.open(path) as image:
        rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))


def load_source(data_dir: Path, name: str) -> SourceImage:
    """Load one source image by its path under the data folder.

    Raises FileNotFoundError naming the file when it is missing.
    """
    path = data_dir / name
    if not path.is_file():
        raise FileNotFoundError(
            f"training source {path} not found; pass --data pointing at the real data folder"
        )
    if name in BENCHMARK_HOLDOUT or name.startswith("ink/"):
        raise ValueError(f"{name} is held out from training; remove it from the source list")
    source = source_from_array(name, read_rgb(path))
    coverage = float(source.tissue_integral[-1, -1]) / (source.height * source.width)
    logger.info(
        "loaded %s (%d x %d, %.1f%% tissue)", name, source.width, source.height, 100 * coverage
    )
    return source


def source_from_array(name: str, rgb: NDArray[np.uint8]) -> SourceImage:
    """Wrap an (H, W, 3) uint8 RGB array as a SourceImage, computing its tissue table."""
    tissue = tissue_mask(rgb).astype(np.int64)
    integral = np.zeros((rgb.shape[0] + 1, rgb.shape[1] + 1), np.int64)
    integral[1:, 1:] = tissue.cumsum(axis=0).cumsum(axis=1)
    return SourceImage(name=name, rgb=rgb, tissue_integral=integral)
