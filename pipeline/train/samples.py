"""Labelled 128 px training tiles: clean crops of real tissue and glass with simulated ink.

Task ``ink``: label 1 when the tile carries simulated ink of any colour, 0 for a clean
crop. Task ``background``: every tile carries ink. Label 0 ("background ink") when the
clean crop is glass only (at most 0.3% tissue), 1 ("foreground ink") when it contains at
least 3% tissue and the ink covers some of it. Crops between the two are not used.
Every tile comes from its own child seed, so a tile set depends only on (seed, count).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from pipeline.models.preprocess import resize_tile
from pipeline.simulate import COLOUR_NAMES, STROKE_KINDS, simulate_ink
from pipeline.train.sources import SourceImage, tissue_mask

Task = Literal["ink", "background"]
TASKS: tuple[str, ...] = ("ink", "background")
CLASS_NAMES: dict[str, tuple[str, str]] = {
    "ink": ("no_ink", "ink"),
    "background": ("background_ink", "foreground_ink"),
}

TILE_PX = 128
MAX_CROP_PX = 1024
GLASS_MAX_TISSUE = 0.003
TISSUE_MIN_FRACTION = 0.03
MIN_INK_FRACTION = 0.01  # of the tile's pixels in the binary ink mask
PRESSURE_RANGE = (0.45, 1.8)  # blue-pair density p10..p90 is 0.48..2.0
STROKE_WIDTH_RANGE_PX = (3.0, 100.0)  # at 128 px: from a thumbnail line to most of the tile
# Crops with this share of greenish pixels are not used as clean negatives: the CMU-1
# slide carries small spots of green tissue-marking dye on the tissue margin.
MAX_GREENISH_FRACTION = 0.005

# glass: at most 0.3% tissue; tissue: at least 3%; sparse: 3% to 35%, such as fat or a
# tissue edge; any: no condition.
Region = Literal["glass", "tissue", "sparse", "any"]
REGIONS: tuple[Region, ...] = ("glass", "tissue", "sparse", "any")
SPARSE_MAX_TISSUE = 0.35


@dataclass
class TileSet:
    """Tiles with labels and the provenance of each tile."""

    tiles: NDArray[np.uint8]  # (N, 128, 128, 3)
    labels: NDArray[np.int64]  # (N,)
    records: list[dict[str, object]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def generate_tiles(
    task: str,
    sources: Sequence[SourceImage],
    *,
    count: int,
    seed: int | Sequence[int],
    progress: Callable[[int, int], None] | None = None,
) -> TileSet:
    """Generate ``count`` labelled tiles, half of each class, from the given sources.

    ``seed`` is the entropy of a numpy SeedSequence: an int or a sequence of ints.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if not sources:
        raise ValueError("no source images; check the data folder")
    tiles = np.zeros((count, TILE_PX, TILE_PX, 3), np.uint8)
    labels = np.zeros(count, np.int64)
    records = []
    for index, child in enumerate(np.random.SeedSequence(seed).spawn(count)):
        rng = np.random.default_rng(child)
        label = index % 2
        if task == "ink":
            tile, record = _ink_task_tile(rng, sources, has_ink=bool(label))
        else:
            tile, record = _background_task_tile(rng, sources, foreground=bool(label))
        tiles[index] = tile
        labels[index] = label
        records.append({"label": label, **record})
        if progress is not None and (index + 1) % 100 == 0:
            progress(index + 1, count)
    return TileSet(tiles=tiles, labels=labels, records=records)


def _ink_task_tile(
    rng: np.random.Generator, sources: Sequence[SourceImage], *, has_ink: bool
) -> tuple[NDArray[np.uint8], dict[str, object]]:
    region = REGIONS[int(rng.choice(len(REGIONS), p=[0.3, 0.35, 0.15, 0.2]))]
    while True:
        crop, record = _random_crop(rng, sources, region=region)
        if not has_ink:
            if _greenish_fraction(crop) <= MAX_GREENISH_FRACTION:
                return crop, record
            continue
        inked = _add_ink(rng, crop)
        if inked is not None:
            tile, ink_record, _ = inked
            return tile, {**record, **ink_record}


def _background_task_tile(
    rng: np.random.Generator, sources: Sequence[SourceImage], *, foreground: bool
) -> tuple[NDArray[np.uint8], dict[str, object]]:
    region: Region = "glass"
    if foreground:
        # Sparse tissue under ink is the hard case: it looks like glass at 128 px.
        region = "sparse" if rng.random() < 0.4 else "tissue"
    while True:
        crop, record = _random_crop(rng, sources, region=region)
        inked = _add_ink(rng, crop)
        if inked is None:
            continue
        tile, ink_record, ink_on_tissue = inked
        # Foreground ink must lie over tissue, not only beside it.
        if foreground and ink_on_tissue < MIN_INK_FRACTION / 2:
            continue
        return tile, {**record, **ink_record, "ink_on_tissue_fraction": round(ink_on_tissue, 4)}


def _random_crop(
    rng: np.random.Generator, sources: Sequence[SourceImage], *, region: Region
) -> tuple[NDArray[np.uint8], dict[str, object]]:
    """Cut a random square crop matching ``region`` and resize it to the tile size."""
    while True:
        source = sources[int(rng.integers(len(sources)))]
        largest = min(MAX_CROP_PX, source.height, source.width)
        for _ in range(20):
            size = round(math.exp(rng.uniform(math.log(TILE_PX), math.log(largest))))
            x = int(rng.integers(0, source.width - size + 1))
            y = int(rng.integers(0, source.height - size + 1))
            tissue = source.tissue_fraction(x, y, size)
            if region == "glass" and tissue > GLASS_MAX_TISSUE:
                continue
            if region in ("tissue", "sparse") and tissue < TISSUE_MIN_FRACTION:
                continue
            if region == "sparse" and tissue > SPARSE_MAX_TISSUE:
                continue
            crop = resize_tile(source.rgb[y : y + size, x : x + size], TILE_PX)
            record: dict[str, object] = {
                "source": source.name,
                "x": x,
                "y": y,
                "size_px": size,
                "tissue_fraction": round(tissue, 4),
            }
            return np.ascontiguousarray(crop), record


def _add_ink(
    rng: np.random.Generator, crop: NDArray[np.uint8]
) -> tuple[NDArray[np.uint8], dict[str, object], float] | None:
    """Draw one or two marks on a crop, or return None when under 1% of the tile is inked.

    Returns the inked tile, its record and the share of the tile that is ink over tissue.
    """
    marks = 2 if rng.random() < 0.15 else 1
    inked = crop
    mask = np.zeros(crop.shape[:2], np.uint8)
    colours = []
    kinds = []
    for _ in range(marks):
        colour = str(rng.choice(COLOUR_NAMES))
        pressure = float(math.exp(rng.uniform(*np.log(PRESSURE_RANGE))))
        if rng.random() < 0.1:
            # The tile lies inside a stroke much wider than itself.
            kind = "cover"
            result = simulate_ink(
                inked,
                rng=rng,
                colour=colour,
                kind="line",
                width_px=3.0 * TILE_PX,
                pressure=pressure,
            )
        else:
            kind = str(rng.choice(STROKE_KINDS))
            width = float(math.exp(rng.uniform(*np.log(STROKE_WIDTH_RANGE_PX))))
            result = simulate_ink(
                inked, rng=rng, colour=colour, kind=kind, width_px=width, pressure=pressure
            )
        inked = result.inked
        mask |= result.mask
        colours.append(colour)
        kinds.append(kind)
    ink_fraction = float(mask.mean())
    if ink_fraction < MIN_INK_FRACTION:
        return None
    on_tissue = float((mask.astype(bool) & tissue_mask(crop)).mean())
    record: dict[str, object] = {
        "colours": colours,
        "kinds": kinds,
        "ink_fraction": round(ink_fraction, 4),
    }
    return inked, record, on_tissue


def _greenish_fraction(tile: NDArray[np.uint8]) -> float:
    """Return the share of pixels that are greener than red after a 5 px box blur.

    H&E never makes a pixel greener than it is red; green and blue inks and marking
    dyes do. The blur suppresses single-pixel scanner colour noise.
    """
    blurred = cv2.blur(tile, (5, 5)).astype(np.int16)
    return float(((blurred[..., 1] - blurred[..., 0]) > 20).mean())
