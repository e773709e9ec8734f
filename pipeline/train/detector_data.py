"""Labelled 256 px detector tiles: clean crops with simulated ink, and the box labelling rule.

Each tile is a square crop of a clean source image, 256 to 1024 source pixels wide,
area-resized to 256 px, with simulated marker ink drawn on three quarters of them.
Boxes are corners in tile pixels, labelled by two rules applied to the 256 px tile,
so every length below is in those pixels:

``ink``
    The binary mask of the simulated ink is ``SimulatedInk.mask`` (blurred stroke
    coverage above 0.1) of all marks of the tile together. It is dilated by
    INK_GROUP_RADIUS_PX (4 px), which joins strokes up to about 8 px apart, such as the
    letters of a word or a dotted line, into one group. Each group's box is the bounding
    box of its undilated ink pixels. Groups with fewer than MIN_INK_PIXELS (48) ink
    pixels are dropped, because they are faint blur tails or strokes that barely enter
    the tile.

``cluster``
    Regions of densely packed cells or cytoplasm, measured on the clean crop before
    ink is drawn (ink that hides tissue does not change what lies under it):

    1. Colour deconvolution into haematoxylin (H) and eosin (E) optical density with the
       Ruifrok-Johnston stain vectors of ``pipeline.optical.HE_REFERENCE``, a third
       orthogonal residual vector and white (255) glass.
    2. A pixel is basophilic when H >= 0.25 and H >= 2 E. The second condition leaves
       out red blood cells and dense eosin, which leak into H but carry more E.
    3. Density is the share of basophilic pixels under a Gaussian window of sigma
       CLUSTER_SIGMA_PX (8 px).
    4. Pixels with density >= 0.5 are dense. A closing with a disc of radius
       CLUSTER_CLOSING_RADIUS_PX (6 px) joins dense areas split by a thin gap.
    5. Each 8-connected component of dense pixels with at least MIN_CLUSTER_AREA_PX
       (600) pixels, about a 25 x 25 px square, is boxed.

    The rule uses fixed reference stain vectors, so slides stained with much more
    eosin than usual (pink nuclei) give fewer cluster boxes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from pipeline.models.preprocess import resize_tile
from pipeline.optical import HE_REFERENCE, WHITE, optical_density
from pipeline.simulate import COLOUR_NAMES, STROKE_KINDS, simulate_ink
from pipeline.train.samples import MAX_GREENISH_FRACTION, PRESSURE_RANGE, _greenish_fraction
from pipeline.train.sources import SourceImage

TILE_PX = 256
MAX_CROP_PX = 1024
CLASS_NAMES: tuple[str, str] = ("ink", "cluster")
INK_CLASS = 0
CLUSTER_CLASS = 1

INK_GROUP_RADIUS_PX = 4
MIN_INK_PIXELS = 48
BASOPHILIC_MIN_H = 0.25
BASOPHILIC_MIN_H_TO_E = 2.0
CLUSTER_SIGMA_PX = 8.0
CLUSTER_MIN_DENSITY = 0.5
CLUSTER_CLOSING_RADIUS_PX = 6
MIN_CLUSTER_AREA_PX = 600

INKED_SHARE = 0.75  # share of tiles with simulated ink; the rest are clean crops
TWO_MARKS_SHARE = 0.2  # share of inked tiles with two marks
COVER_SHARE = 0.05  # share of marks that are a stroke wider than the tile
STROKE_WIDTH_RANGE_PX = (4.0, 120.0)
TISSUE_MIN_FRACTION = 0.03
GLASS_MAX_TISSUE = 0.003
# Crop kinds and their shares: mostly tissue, where clusters and foreground ink are.
CROP_REGIONS: tuple[str, ...] = ("tissue", "glass", "any")
CROP_REGION_SHARES: tuple[float, ...] = (0.6, 0.15, 0.25)


@dataclass
class DetectionSet:
    """Tiles with their ground-truth boxes and the provenance of each tile."""

    tiles: NDArray[np.uint8]  # (N, 256, 256, 3)
    boxes: list[NDArray[np.float32]]  # per tile (K, 5): x0, y0, x1, y1 in tile px, class
    records: list[dict[str, object]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.tiles.shape[0])

    def class_counts(self) -> list[int]:
        """Return the number of boxes of each class over all tiles."""
        counts = [0] * len(CLASS_NAMES)
        for boxes in self.boxes:
            for label in boxes[:, 4].astype(np.int64):
                counts[label] += 1
        return counts


def ink_boxes(mask: NDArray[np.bool_] | NDArray[np.uint8]) -> NDArray[np.float32]:
    """Return (K, 4) xyxy boxes of the ink groups of a binary (H, W) mask.

    The grouping and size rule is the ``ink`` rule of the module docstring.
    """
    ink = np.asarray(mask).astype(np.uint8)
    if not ink.any():
        return np.zeros((0, 4), np.float32)
    size = 2 * INK_GROUP_RADIUS_PX + 1
    grouped = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    count, labels = cv2.connectedComponents(grouped, connectivity=8)
    labels = np.where(ink > 0, labels, 0)  # group index of each ink pixel, 0 elsewhere
    boxes = []
    for group in range(1, count):
        rows, columns = np.nonzero(labels == group)
        if len(rows) < MIN_INK_PIXELS:
            continue
        boxes.append([columns.min(), rows.min(), columns.max() + 1, rows.max() + 1])
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def haematoxylin_eosin_density(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Return (H, W, 2) haematoxylin and eosin optical density, clipped at 0.

    Colour deconvolution with the reference H and E vectors and a residual vector
    orthogonal to both, against white glass.
    """
    residual = np.cross(HE_REFERENCE[0], HE_REFERENCE[1])
    basis = np.stack([HE_REFERENCE[0], HE_REFERENCE[1], residual / np.linalg.norm(residual)])
    od = optical_density(rgb, WHITE)  # (H, W, 3)
    amounts = od @ np.linalg.inv(basis).astype(np.float32)  # (H, W, 3): H, E, residual
    return np.clip(amounts[..., :2], 0.0, None).astype(np.float32)


def cluster_mask(rgb: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """Return the (H, W) mask of dense pixels of steps 1 to 4 of the cluster rule."""
    stains = haematoxylin_eosin_density(rgb)
    haematoxylin, eosin = stains[..., 0], stains[..., 1]
    basophilic = (haematoxylin >= BASOPHILIC_MIN_H) & (
        haematoxylin >= BASOPHILIC_MIN_H_TO_E * eosin
    )
    density = cv2.GaussianBlur(
        basophilic.astype(np.float32),
        (0, 0),
        sigmaX=CLUSTER_SIGMA_PX,
        borderType=cv2.BORDER_REFLECT,
    )
    dense = (density >= CLUSTER_MIN_DENSITY).astype(np.uint8)
    size = 2 * CLUSTER_CLOSING_RADIUS_PX + 1
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    return np.asarray(cv2.morphologyEx(dense, cv2.MORPH_CLOSE, disc) > 0)


def cluster_boxes(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Return (K, 4) xyxy boxes of the dense-cell regions of a clean RGB tile.

    The steps are those of the ``cluster`` rule of the module docstring.
    """
    dense = cluster_mask(rgb).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(dense, connectivity=8)
    boxes = [
        [x, y, x + width, y + height]
        for x, y, width, height, area in stats[1:count]
        if area >= MIN_CLUSTER_AREA_PX
    ]
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def label_tile(
    clean: NDArray[np.uint8], ink_mask: NDArray[np.bool_] | NDArray[np.uint8]
) -> NDArray[np.float32]:
    """Return (K, 5) boxes x0, y0, x1, y1, class of a tile from its clean pixels and ink mask."""
    ink = ink_boxes(ink_mask)
    clusters = cluster_boxes(clean)
    labelled = np.zeros((len(ink) + len(clusters), 5), np.float32)
    labelled[: len(ink), :4] = ink
    labelled[: len(ink), 4] = INK_CLASS
    labelled[len(ink) :, :4] = clusters
    labelled[len(ink) :, 4] = CLUSTER_CLASS
    return labelled


def generate_detection_tiles(
    sources: Sequence[SourceImage],
    *,
    count: int,
    seed: int | Sequence[int],
    progress: Callable[[int, int], None] | None = None,
) -> DetectionSet:
    """Generate ``count`` labelled tiles from the given sources.

    ``seed`` is the entropy of a numpy SeedSequence, and each tile draws from its own
    child seed, so a set depends only on (sources, seed, count).
    """
    if not sources:
        raise ValueError("no source images; check the data folder")
    tiles = np.zeros((count, TILE_PX, TILE_PX, 3), np.uint8)
    boxes = []
    records = []
    for index, child in enumerate(np.random.SeedSequence(seed).spawn(count)):
        rng = np.random.default_rng(child)
        clean, record = _random_crop(rng, sources)
        inked = clean
        ink_mask = np.zeros(clean.shape[:2], np.uint8)
        if rng.random() < INKED_SHARE:
            inked, ink_mask, ink_record = _add_ink(rng, clean)
            record.update(ink_record)
        tiles[index] = inked
        labelled = label_tile(clean, ink_mask)
        boxes.append(labelled)
        record["boxes"] = np.bincount(labelled[:, 4].astype(np.int64), minlength=2).tolist()
        records.append(record)
        if progress is not None and ((index + 1) % 50 == 0 or index + 1 == count):
            progress(index + 1, count)
    return DetectionSet(tiles=tiles, boxes=boxes, records=records)


def _random_crop(
    rng: np.random.Generator, sources: Sequence[SourceImage]
) -> tuple[NDArray[np.uint8], dict[str, object]]:
    """Cut a random square crop of the drawn region kind and resize it to the tile size.

    Crops with more than MAX_GREENISH_FRACTION greenish pixels are skipped, because the
    green tissue-marking dye on the CMU-1 slide would be unlabelled ink.
    """
    region = CROP_REGIONS[int(rng.choice(len(CROP_REGIONS), p=CROP_REGION_SHARES))]
    while True:
        source = sources[int(rng.integers(len(sources)))]
        smallest = min(TILE_PX, source.height, source.width)
        largest = min(MAX_CROP_PX, source.height, source.width)
        for _ in range(20):
            size = round(math.exp(rng.uniform(math.log(smallest), math.log(largest))))
            x = int(rng.integers(0, source.width - size + 1))
            y = int(rng.integers(0, source.height - size + 1))
            tissue = source.tissue_fraction(x, y, size)
            if region == "tissue" and tissue < TISSUE_MIN_FRACTION:
                continue
            if region == "glass" and tissue > GLASS_MAX_TISSUE:
                continue
            crop = np.ascontiguousarray(
                resize_tile(source.rgb[y : y + size, x : x + size], TILE_PX)
            )
            if _greenish_fraction(crop) > MAX_GREENISH_FRACTION:
                continue
            record: dict[str, object] = {
                "source": source.name,
                "x": x,
                "y": y,
                "size_px": size,
                "region": region,
                "tissue_fraction": round(tissue, 4),
            }
            return crop, record


def _add_ink(
    rng: np.random.Generator, clean: NDArray[np.uint8]
) -> tuple[NDArray[np.uint8], NDArray[np.uint8], dict[str, object]]:
    """Draw one or two marks; return the inked tile, the union of their masks and a record."""
    marks = 2 if rng.random() < TWO_MARKS_SHARE else 1
    inked = clean
    mask = np.zeros(clean.shape[:2], np.uint8)
    colours = []
    kinds = []
    for _ in range(marks):
        colour = str(rng.choice(COLOUR_NAMES))
        pressure = float(math.exp(rng.uniform(*np.log(PRESSURE_RANGE))))
        if rng.random() < COVER_SHARE:
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
    record: dict[str, object] = {
        "colours": colours,
        "kinds": kinds,
        "ink_fraction": round(float(mask.mean()), 4),
    }
    return inked, mask, record
