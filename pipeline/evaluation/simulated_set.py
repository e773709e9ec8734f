"""The simulated benchmark: simulated ink on clean tissue that no model trains on.

Tissue comes from the clean images in ``pipeline.train.sources.BENCHMARK_HOLDOUT``;
glass comes from ``clean/no-tissue2.png``, which the classifiers use only for
validation and no restoration model trains on. Every case is a 256x256 crop with one
stroke set drawn by the Beer-Lambert simulator. The cases cycle through the four pen
colours, three placements (on glass, on tissue, across the tissue edge) and two ink
strengths, so each combination is equally represented.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from pipeline.simulate import COLOUR_NAMES, simulate_ink
from pipeline.train.sources import BENCHMARK_HOLDOUT, tissue_mask

Placement = Literal["glass", "tissue", "edge"]
Strength = Literal["light", "heavy"]

GLASS_SOURCE = "clean/no-tissue2.png"
TILE_PX = 256
PLACEMENTS: tuple[Placement, ...] = ("glass", "tissue", "edge")
STRENGTHS: tuple[Strength, ...] = ("light", "heavy")
# Pressure scales the calibrated ink density; light strokes are faint, heavy ones
# approach the darkest real marker seen on the paired scans.
PRESSURE: dict[Strength, float] = {"light": 0.45, "heavy": 1.2}
STROKE_KINDS = ("line", "circle", "arrow", "dots", "scribble", "word")
# A crop counts as tissue when at least this share of it is stained, as glass when at
# most the second share is, and as an edge in between.
TISSUE_MIN_SHARE = 0.8
GLASS_MAX_SHARE = 0.02
EDGE_SHARE_RANGE = (0.25, 0.75)


@dataclass(frozen=True)
class SimulatedCase:
    """One benchmark tile: clean crop, inked crop and the simulator's ground truth."""

    name: str
    colour: str
    placement: Placement
    strength: Strength
    clean: NDArray[np.uint8]  # (256, 256, 3)
    inked: NDArray[np.uint8]  # (256, 256, 3)
    mask: NDArray[np.uint8]  # (256, 256), 1 wherever the simulated ink changed a pixel


def simulated_cases(data_dir: Path, *, count: int = 200, seed: int = 0) -> Iterator[SimulatedCase]:
    """Yield ``count`` reproducible cases; equal seeds give identical cases."""
    rng = np.random.default_rng(seed)
    crops = _CropSampler(data_dir, rng)
    combinations = itertools.cycle(itertools.product(COLOUR_NAMES, PLACEMENTS, STRENGTHS))
    for index in range(count):
        colour, placement, strength = next(combinations)
        clean = crops.sample(placement)
        kind = STROKE_KINDS[index % len(STROKE_KINDS)]
        ink = simulate_ink(clean, rng=rng, colour=colour, kind=kind,
                           pressure=PRESSURE[strength])
        # The blurred stroke edge darkens some pixels that fall below the binary mask's
        # threshold. They are ink too, so the ground truth covers every changed pixel.
        changed = (ink.inked != clean).any(axis=2)
        yield SimulatedCase(
            name=f"sim-{index:03d}-{colour}-{placement}-{strength}-{kind}",
            colour=colour,
            placement=placement,
            strength=strength,
            clean=clean,
            inked=ink.inked,
            mask=((ink.mask != 0) | changed).astype(np.uint8),
        )


class _CropSampler:
    """Random 256x256 crops of the held-out images, chosen by tissue share."""

    def __init__(self, data_dir: Path, rng: np.random.Generator) -> None:
        self._rng = rng
        self._tissue_images = [_load_rgb(data_dir / name) for name in BENCHMARK_HOLDOUT]
        self._glass_image = _load_rgb(data_dir / GLASS_SOURCE)
        self._tissue_masks = [tissue_mask(image) for image in self._tissue_images]

    def sample(self, placement: Placement) -> NDArray[np.uint8]:
        if placement == "glass":
            glass = self._random_crop(self._glass_image, None, (0.0, GLASS_MAX_SHARE))
            if glass is None:
                raise RuntimeError(f"{GLASS_SOURCE} has no 256-px crop of bare glass")
            return glass
        share_range = (TISSUE_MIN_SHARE, 1.0) if placement == "tissue" else EDGE_SHARE_RANGE
        # Most held-out images are dense tissue; try them in random order until one has
        # a crop of the requested share.
        for index in self._rng.permutation(len(self._tissue_images)):
            crop = self._random_crop(self._tissue_images[index], self._tissue_masks[index],
                                     share_range)
            if crop is not None:
                return crop
        raise RuntimeError(f"no held-out crop has a tissue share in {share_range}")

    def _random_crop(self, image: NDArray[np.uint8], tissue: NDArray[np.bool_] | None,
                     share_range: tuple[float, float],
                     attempts: int = 200) -> NDArray[np.uint8] | None:
        height, width = image.shape[:2]
        low, high = share_range
        for _ in range(attempts):
            top = int(self._rng.integers(0, height - TILE_PX + 1))
            left = int(self._rng.integers(0, width - TILE_PX + 1))
            share = 0.0 if tissue is None else float(
                tissue[top:top + TILE_PX, left:left + TILE_PX].mean())
            if low <= share <= high:
                return np.ascontiguousarray(image[top:top + TILE_PX, left:left + TILE_PX])
        return None


def _load_rgb(path: Path) -> NDArray[np.uint8]:
    if not path.is_file():
        raise FileNotFoundError(f"benchmark source image {path} not found; "
                                "pass the shared data folder with --data")
    return np.asarray(Image.open(path).convert("RGB"))

