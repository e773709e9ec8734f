"""Localisation: the full-resolution pixel ink mask of a tile and its connected regions.

The mask is the colour-rule result restricted to screening candidates, cleaned with
morphology whose radii are physical lengths. Connected components become boxes.
A learned detector can replace ``component_regions`` behind the same output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from pipeline.geometry import Box, PixelScale
from pipeline.inkrules import INK_COLOURS, colour_labels, ink_colour_masks
from pipeline.morphology import (
    closed,
    component_boxes,
    dilated,
    opened,
    without_small_components,
    without_small_holes,
)
from pipeline.optical import optical_density, unmix_ink
from pipeline.options import RunOptions


@dataclass(frozen=True)
class PixelMask:
    """The cleaned ink mask of a region, the pen colour of each pixel and the ink vectors."""

    mask: np.ndarray  # (H, W) bool
    colour_pixels: dict[str, int]
    # (H, W) int8 index into INK_COLOURS of the nearest inked pixel's colour, -1 without ink.
    colour_map: np.ndarray | None = None
    ink_vectors: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def dominant_colour(self) -> str | None:
        """The colour whose rule matched most masked pixels, or None without ink."""
        colour, count = max(self.colour_pixels.items(), key=lambda item: item[1])
        return colour if count > 0 else None


def pixel_ink_mask(region: np.ndarray, *, glass: np.ndarray, gate: np.ndarray,
                   scale: PixelScale, options: RunOptions,
                   ink_model: InkModel | None = None) -> PixelMask:
    """Compute the ink mask of a level-0 RGB region (H, W, 3).

    ``gate`` (H, W) bool is the screening candidate area: pixels outside it are never ink.
    With ``ink_model``, pixels within ``options.extension_um`` of the colour-rule mask
    whose unmixed amount of the nearest pen colour's ink reaches
    ``options.min_ink_concentration`` join the mask, which catches the faint edges and
    grey parts of a stroke that the colour rules miss.
    """
    kernel = 2 * scale.radius(options.smoothing_um) + 1
    smoothed = cv2.blur(region, (kernel, kernel)) if kernel > 1 else region
    colour_masks = ink_colour_masks(smoothed, glass, options.colour_rules)
    labels = colour_labels(colour_masks)
    mask = (labels >= 0) & gate

    colour_map = None
    ink_vectors: dict[str, np.ndarray] = {}
    if mask.any():
        colour_map = nearest_colour(np.where(mask, labels, -1).astype(np.int8))
        if ink_model is not None:
            ink_vectors = ink_model.vectors_for(region, mask, colour_map)
            # Only next to rule-detected ink: far from it, imperfect stain vectors make
            # tissue itself look like a little ink.
            near_rules = dilated(mask, scale.radius(options.extension_um))
            mask |= gate & near_rules & _unmixed_ink(region, glass, colour_map, ink_vectors,
                                                     ink_model.stain_vectors, kernel, options)

    mask = opened(mask, scale.radius(options.opening_um))
    mask = closed(mask, scale.radius(options.closing_um))
    mask = without_small_holes(mask, scale.area(options.max_hole_area_um2))
    # Specks that survive opening but are far smaller than a pen stroke are dropped.
    mask = without_small_components(mask, scale.area(options.max_hole_area_um2))
    mask &= gate
    colour_pixels = {colour: int((colour_masks[colour] & mask).sum()) for colour in INK_COLOURS}
    return PixelMask(mask=mask, colour_pixels=colour_pixels, colour_map=colour_map,
                     ink_vectors=ink_vectors)


def nearest_colour(labels: np.ndarray) -> np.ndarray:
    """Give every pixel the label of the nearest labelled pixel ((H, W) int8, -1 = none)."""
    present = [int(value) for value in np.unique(labels) if value >= 0]
    if len(present) <= 1:
        return np.full(labels.shape, present[0] if present else -1, dtype=np.int8)
    distances = np.stack([
        cv2.distanceTransform(np.ascontiguousarray(labels != value, dtype=np.uint8),
                              cv2.DIST_L2, 3)
        for value in present])  # (colours, H, W)
    return np.asarray(present, dtype=np.int8)[np.argmin(distances, axis=0)]


def _unmixed_ink(region: np.ndarray, glass: np.ndarray, colour_map: np.ndarray,
                 ink_vectors: dict[str, np.ndarray], stain_vectors: np.ndarray, kernel: int,
                 options: RunOptions) -> np.ndarray:
    """Pixels whose own colour's ink amount reaches the concentration threshold."""
    od = optical_density(region, glass)
    found = np.zeros(colour_map.shape, dtype=bool)
    for colour, vector in ink_vectors.items():
        amount = unmix_ink(od, vector, stain_vectors)
        if amount is None:
            continue
        if kernel > 1:
            amount = cv2.blur(amount, (kernel, kernel))
        own_colour = colour_map == INK_COLOURS.index(colour)
        found |= own_colour & (amount >= options.min_ink_concentration)
    return found


def component_regions(mask: np.ndarray, *, origin: Box) -> list[tuple[Box, int]]:
    """Return level-0 (box, pixel count) of each mask component; ``origin`` locates the mask."""
    return [(box.translated(origin.x, origin.y), area) for box, area in component_boxes(mask)]


class InkModel(Protocol):
    """Supplies ink OD directions for a region and the slide's H&E stain vectors."""

    @property
    def stain_vectors(self) -> np.ndarray:
        """The slide's haematoxylin and eosin OD vectors, (2, 3)."""

    def vectors_for(self, region: np.ndarray, mask: np.ndarray,
                    colour_map: np.ndarray) -> dict[str, np.ndarray]:
        """Return a unit ink OD vector (3,) for each colour present in ``colour_map``."""
