"""Composition: blend restored pixels into the original inside the ink region only.

The ink region is the ink mask grown by a small margin that covers the soft edge of a
pen stroke. Restored pixels get full weight in the region's interior and a weight
that falls towards its border over a short feather, so the stroke's outline does not
show. Every pixel outside the region keeps its original value exactly.
"""

from __future__ import annotations

import cv2
import numpy as np


def ink_region(mask: np.ndarray, *, dilation_px: float) -> np.ndarray:
    """Return the (H, W) bool region within ``dilation_px`` pixels of the ink ``mask``."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any() or dilation_px <= 0:
        return mask.copy()
    outside = np.ascontiguousarray(~mask, dtype=np.uint8)
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, 5)  # pixels to the nearest ink
    return distance <= dilation_px


def blend_weights(region: np.ndarray, *, feather_px: float) -> np.ndarray:
    """Return (H, W) float32 weights of restored pixels inside ``region``.

    A pixel ``d`` pixels from the nearest pixel outside the region (1 for a border
    pixel) gets ``min(1, d / (feather_px + 1))``; pixels outside the region get 0.
    """
    region = np.asarray(region, dtype=bool)
    if not region.any():
        return np.zeros(region.shape, dtype=np.float32)
    # Pad with an outside border so that the image edge does not count as the region's edge.
    padded = np.pad(region, 1, constant_values=True).astype(np.uint8)
    depth = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    if not (~region).any():
        return np.ones(region.shape, dtype=np.float32)
    if feather_px <= 0:
        return region.astype(np.float32)
    weights = np.clip(depth / (feather_px + 1.0), 0.0, 1.0).astype(np.float32)
    weights[~region] = 0.0
    return weights


def compose(original: np.ndarray, restored: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Blend ``restored`` (H, W, 3) into ``original`` (H, W, 3) uint8 by ``weights``.

    Pixels with weight 0 are copied from ``original`` unchanged.
    """
    alpha = weights[:, :, np.newaxis]
    blended = original.astype(np.float32) * (1.0 - alpha) + restored.astype(np.float32) * alpha
    result = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    untouched = weights <= 0.0
    result[untouched] = original[untouched]
    return result
