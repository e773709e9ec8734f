"""Reference restorations that every learned method must beat.

Each baseline takes an inked (H, W, 3) uint8 image and an (H, W) ink mask and returns a
restored uint8 image. Pixels outside the mask are returned unchanged.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

TELEA_RADIUS_PX = 5


def restore_unchanged(inked: NDArray[np.uint8], mask: NDArray[np.generic]) -> NDArray[np.uint8]:
    """Return the inked input itself: the floor that every method must beat."""
    return inked.copy()


def restore_white_fill(inked: NDArray[np.uint8], mask: NDArray[np.generic]) -> NDArray[np.uint8]:
    """Paint the masked pixels white, as simple colour-threshold tools do."""
    restored = inked.copy()
    restored[np.asarray(mask) != 0] = 255
    return restored


def restore_telea(inked: NDArray[np.uint8], mask: NDArray[np.generic]) -> NDArray[np.uint8]:
    """Inpaint the masked pixels with OpenCV's fast-marching method (Telea 2004)."""
    mask_u8 = (np.asarray(mask) != 0).astype(np.uint8)
    if not mask_u8.any():
        return inked.copy()
    inpainted = cv2.inpaint(np.ascontiguousarray(inked), mask_u8, TELEA_RADIUS_PX,
                            cv2.INPAINT_TELEA)
    # cv2.inpaint may touch pixels next to the mask; copy back only the masked ones.
    restored = inked.copy()
    restored[mask_u8 != 0] = inpainted[mask_u8 != 0]
    return restored
