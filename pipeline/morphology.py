"""Binary morphology on masks with radii in pixels (OpenCV back end)."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.geometry import Box


def _u8(mask: np.ndarray) -> np.ndarray:
    # OpenCV needs contiguous uint8, and a bool array viewed as uint8 contains 0 and 1.
    return np.ascontiguousarray(mask, dtype=bool).view(np.uint8)


def disk(radius: int) -> np.ndarray:
    """Return an elliptical structuring element of the given radius in pixels."""
    size = 2 * radius + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def opened(mask: np.ndarray, radius: int) -> np.ndarray:
    """Remove structures narrower than about 2 * radius pixels."""
    if radius < 1:
        return mask
    return cv2.morphologyEx(_u8(mask), cv2.MORPH_OPEN, disk(radius)).view(bool)


def closed(mask: np.ndarray, radius: int) -> np.ndarray:
    """Fill gaps narrower than about 2 * radius pixels."""
    if radius < 1:
        return mask
    return cv2.morphologyEx(_u8(mask), cv2.MORPH_CLOSE, disk(radius)).view(bool)


def dilated(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grow the mask by ``radius`` pixels."""
    if radius < 1:
        return mask
    return cv2.dilate(_u8(mask), disk(radius)).view(bool)


def without_small_components(mask: np.ndarray, min_area: int) -> np.ndarray:
    """Drop 8-connected components with fewer than ``min_area`` pixels."""
    if min_area <= 1 or not mask.any():
        return mask
    _, labels, stats, _ = cv2.connectedComponentsWithStats(_u8(mask), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False  # label 0 is the background
    return keep[labels]


def without_small_holes(mask: np.ndarray, max_hole_area: int) -> np.ndarray:
    """Fill holes (background components not touching the border) up to ``max_hole_area``."""
    if max_hole_area < 1 or not mask.any():
        return mask
    holes = ~mask
    _, labels, stats, _ = cv2.connectedComponentsWithStats(_u8(holes), connectivity=4)
    height, width = mask.shape
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    right = left + stats[:, cv2.CC_STAT_WIDTH]
    bottom = top + stats[:, cv2.CC_STAT_HEIGHT]
    touches_border = (left == 0) | (top == 0) | (right == width) | (bottom == height)
    fill = (stats[:, cv2.CC_STAT_AREA] <= max_hole_area) & ~touches_border
    fill[0] = False
    return mask | fill[labels]


def component_boxes(mask: np.ndarray, *, min_area: int = 1) -> list[tuple[Box, int]]:
    """Return (bounding box, pixel count) of each 8-connected component."""
    if not mask.any():
        return []
    count, _, stats, _ = cv2.connectedComponentsWithStats(_u8(mask), connectivity=8)
    boxes = []
    for label in range(1, count):
        area = int(stats[label, cv2.CC_STAT_AREA])
        if area < min_area:
            continue
        boxes.append((Box(int(stats[label, cv2.CC_STAT_LEFT]), int(stats[label, cv2.CC_STAT_TOP]),
                          int(stats[label, cv2.CC_STAT_WIDTH]),
                          int(stats[label, cv2.CC_STAT_HEIGHT])), area))
    return boxes
