"""Screening: find candidate ink regions on a low-resolution view of the slide.

Only the regions found here are read at full resolution, so a slide without ink
is read once at about ``RunOptions.screen_mpp`` micrometres per pixel and never
tile by tile.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from pipeline.geometry import Box, PixelScale
from pipeline.inkrules import INK_COLOURS, colour_labels, ink_colour_masks
from pipeline.io.info import SlideInfo
from pipeline.io.slide import Slide
from pipeline.morphology import component_boxes, dilated, opened, without_small_components
from pipeline.optical import estimate_glass, estimate_stain_vectors, optical_density
from pipeline.options import RunOptions
from pipeline.restore import MIN_INK_SAMPLES, TISSUE_CONTEXT_UM, measure_ink_vector

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScreeningResult:
    """Screening output: masks at the screening resolution and boxes in level-0 pixels."""

    downsample: float
    scale: PixelScale
    glass: np.ndarray  # (3,) float32 RGB of empty glass
    stain_vectors: np.ndarray  # (2, 3) haematoxylin and eosin OD directions
    ink_mask: np.ndarray  # (h, w) bool: cleaned ink pixels at screening resolution
    candidate_mask: np.ndarray  # (h, w) bool: ink_mask grown by the candidate margin
    boxes: list[Box]  # level-0 bounding boxes of candidate_mask components
    ink_vectors: list[dict[str, np.ndarray]]  # measured ink OD direction per box and colour
    colour_pixels: dict[str, int]  # ink pixels per colour at screening resolution

    @property
    def ink_found(self) -> bool:
        """Whether any candidate region was found."""
        return bool(self.boxes)

    def candidate_crop(self, box: Box) -> np.ndarray:
        """Return candidate_mask resampled (nearest) onto a level-0 box, (box.height, box.width)."""
        return _crop_resampled(self.candidate_mask, box, self.downsample)

    def ink_vectors_for(self, box: Box) -> dict[str, np.ndarray]:
        """Return the ink vectors measured in the candidate region overlapping ``box`` most."""
        best: dict[str, np.ndarray] = {}
        best_overlap = 0
        for candidate, vectors in zip(self.boxes, self.ink_vectors, strict=True):
            overlap = _overlap(candidate, box)
            if vectors and overlap > best_overlap:
                best, best_overlap = vectors, overlap
        return best

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe summary for the run report."""
        return {
            "downsample": round(self.downsample, 4),
            "mpp": round(self.scale.mpp * self.downsample, 4),
            "resolution_assumed": self.scale.assumed,
            "size": [int(self.ink_mask.shape[1]), int(self.ink_mask.shape[0])],
            "glass_rgb": [round(float(value), 1) for value in self.glass],
            "stain_vectors": [[round(float(value), 4) for value in row]
                              for row in self.stain_vectors],
            "colour_pixels": self.colour_pixels,
            "candidate_boxes": [
                {"x": box.x, "y": box.y, "width": box.width, "height": box.height,
                 "ink_vectors": {colour: [round(float(value), 4) for value in vector]
                                 for colour, vector in vectors.items()}}
                for box, vectors in zip(self.boxes, self.ink_vectors, strict=True)],
        }


def pixel_scale(info: SlideInfo, options: RunOptions) -> PixelScale:
    """Return the slide's level-0 resolution, or ``options.assumed_mpp`` with a warning."""
    if info.mpp_x and info.mpp_y:
        return PixelScale(mpp=math.sqrt(info.mpp_x * info.mpp_y))
    logger.warning("%s records no resolution; assuming %.3f um/px for size thresholds",
                   info.path, options.assumed_mpp)
    return PixelScale(mpp=options.assumed_mpp, assumed=True)


def screening_downsample(info: SlideInfo, scale: PixelScale, options: RunOptions) -> float:
    """Return the level-0 downsample of the screening view.

    Aims at ``options.screen_mpp`` but keeps the longer side at least
    ``options.screen_min_side_px`` so that small images are screened in detail.
    """
    target = options.screen_mpp / scale.mpp
    longest = max(info.width, info.height)
    return max(1.0, min(target, longest / options.screen_min_side_px))


def screen_slide(slide: Slide, *, options: RunOptions) -> ScreeningResult:
    """Read the slide at screening resolution and find candidate ink regions."""
    info = slide.info
    scale = pixel_scale(info, options)
    downsample = screening_downsample(info, scale, options)
    view = slide.read_region(0, 0, info.width, info.height, downsample=downsample)
    logger.info("screening %s at downsample %.2f (%dx%d px)", info.path, downsample,
                view.shape[1], view.shape[0])
    return screen_image(view, scale=scale, downsample=downsample, options=options,
                        level0_size=(info.width, info.height))


def screen_image(view: np.ndarray, *, scale: PixelScale, downsample: float,
                 options: RunOptions,
                 level0_size: tuple[int, int] | None = None) -> ScreeningResult:
    """Find candidate ink regions in an RGB view (h, w, 3) taken at ``downsample``.

    ``level0_size`` (width, height) clips the returned boxes; by default it is the
    view size times ``downsample``.
    """
    if level0_size is None:
        level0_size = (math.ceil(view.shape[1] * downsample),
                       math.ceil(view.shape[0] * downsample))
    glass = estimate_glass(view)
    # Average over about screen_mpp micrometres even when the view is finer, so that
    # rules see ink layers rather than single stained fibres or JPEG noise.
    kernel = max(3, min(31, scale.radius(options.screen_mpp, downsample=downsample)))
    smoothed = cv2.blur(view, (kernel, kernel))
    colour_masks = ink_colour_masks(smoothed, glass, options.colour_rules)
    raw = np.zeros(view.shape[:2], dtype=bool)
    for mask in colour_masks.values():
        raw |= mask

    ink = opened(raw, scale.radius(options.opening_um, downsample=downsample))
    ink = without_small_components(ink, _min_component_area(view, scale, downsample, options))
    candidate = dilated(ink, max(1, scale.radius(options.candidate_margin_um,
                                                 downsample=downsample)))
    components = component_boxes(candidate)
    boxes = [box.scaled(downsample).clipped(*level0_size) for box, _ in components]
    labels = np.where(ink, colour_labels(colour_masks), -1).astype(np.int8)
    ink_vectors = [_component_ink_vectors(view, labels, box, glass=glass, scale=scale,
                                          downsample=downsample, options=options)
                   for box, _ in components]

    od = optical_density(view, glass)
    stain_vectors = estimate_stain_vectors(od[~candidate])
    colour_pixels = {colour: int((colour_masks[colour] & ink).sum()) for colour in INK_COLOURS}
    return ScreeningResult(downsample=downsample, scale=scale, glass=glass,
                           stain_vectors=stain_vectors, ink_mask=ink,
                           candidate_mask=candidate, boxes=boxes, ink_vectors=ink_vectors,
                           colour_pixels=colour_pixels)


def _component_ink_vectors(view: np.ndarray, labels: np.ndarray, box: Box, *,
                           glass: np.ndarray, scale: PixelScale, downsample: float,
                           options: RunOptions) -> dict[str, np.ndarray]:
    """Measure one ink vector per pen colour found in a candidate region."""
    # Measure on the component plus clean context around it, not on the whole view.
    context = scale.radius(4 * TISSUE_CONTEXT_UM, downsample=downsample) + 1
    area = box.expanded(context).clipped(view.shape[1], view.shape[0])
    rows, columns = slice(area.y, area.bottom), slice(area.x, area.right)
    region, region_labels = view[rows, columns], labels[rows, columns]
    vectors = {}
    for index, colour in enumerate(INK_COLOURS):
        colour_mask = region_labels == index
        if colour_mask.sum() < MIN_INK_SAMPLES:
            continue
        vector = measure_ink_vector(region, colour_mask, glass=glass, scale=scale,
                                    options=options, downsample=downsample,
                                    exclude=region_labels >= 0)
        if vector is not None:
            vectors[colour] = vector
    return vectors


def _overlap(first: Box, second: Box) -> int:
    width = min(first.right, second.right) - max(first.x, second.x)
    height = min(first.bottom, second.bottom) - max(first.y, second.y)
    return max(0, width) * max(0, height)


def _min_component_area(view: np.ndarray, scale: PixelScale, downsample: float,
                        options: RunOptions) -> int:
    area = scale.area(options.min_ink_area_um2, downsample=downsample)
    if scale.assumed:
        # Without a recorded resolution the image may be a low-magnification crop, where
        # the physical minimum covers most of it. So the minimum is capped at a share of the view.
        area = min(area, max(1, int(options.min_ink_area_fraction * view.shape[0] * view.shape[1])))
    return area


def _crop_resampled(mask: np.ndarray, box: Box, downsample: float) -> np.ndarray:
    # Level-0 pixel (x, y) falls in screening pixel (floor(x / d), floor(y / d)).
    columns = np.clip(((box.x + np.arange(box.width)) / downsample).astype(np.int64),
                      0, mask.shape[1] - 1)
    rows = np.clip(((box.y + np.arange(box.height)) / downsample).astype(np.int64),
                   0, mask.shape[0] - 1)
    return mask[np.ix_(rows, columns)]
