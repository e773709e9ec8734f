"""Composition: blend restored pixels into the original with a feathered mask edge."""

from __future__ import annotations

import cv2
import numpy as np


def blend_weights(mask: np.ndarray, *, dilation_px: float, feather_px: float) -> np.ndarray:
    """Return (H, W) float32 weights of restored pixels for a core ink mask.

    Weight 1 within ``dilation_px`` of the mask, falling linearly to 0 over the next
    ``feather_px`` pixels, and exactly 0 beyond, so far pixels keep their original values.
    """
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.float32)
    outside = np.ascontiguousarray(~mask, dtype=np.uint8)
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, 5)  # pixels to the nearest ink
    if feather_px <= 0:
        return (distance <= dilation_px).astype(np.float32)
    weights = 1.0 - (distance - dilation_px) / feather_px
    return np.clip(weights, 0.0, 1.0).astype(np.float32)


def compose(original: np.ndarray, restored: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Blend ``restored`` (H, W, 3) float into ``original`` (H, W, 3) uint8 by ``weights``.

    Pixels with weight 0 are copied from ``original`` unchanged.
    """
    alpha = weights[:, :, np.newaxis]
    blended = original.astype(np.float32) * (1.0 - alpha) + restored * alpha
    result = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    untouched = weights <= 0.0
    result[untouched] = original[untouched]
    return result
