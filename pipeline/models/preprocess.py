"""Tile preprocessing shared by classifier training and inference."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from numpy.typing import NDArray


def resize_tile(tile: NDArray[np.uint8], size_px: int) -> NDArray[np.uint8]:
    """Resize an (H, W, 3) uint8 tile to (size_px, size_px, 3) with area interpolation.

    Area interpolation averages the source pixels under each output pixel, so large
    reductions (a 1024 px tile to 128 px) do not alias as bilinear ones would.
    """
    if tile.shape[0] == size_px and tile.shape[1] == size_px:
        return tile
    resized = cv2.resize(tile, (size_px, size_px), interpolation=cv2.INTER_AREA)
    return np.asarray(resized, dtype=np.uint8)


def tiles_to_tensor(tiles: NDArray[np.uint8]) -> torch.Tensor:
    """Convert (N, H, W, 3) uint8 tiles to a (N, 3, H, W) float32 tensor in [0, 1]."""
    batch = torch.from_numpy(np.ascontiguousarray(tiles))  # (N, H, W, 3) uint8
    return batch.permute(0, 3, 1, 2).float().div_(255.0)  # (N, 3, H, W)


def validate_tiles(tiles: NDArray[np.uint8]) -> None:
    """Raise ValueError unless ``tiles`` is an (N, H, W, 3) uint8 array."""
    if not isinstance(tiles, np.ndarray):
        raise ValueError(f"tiles must be a numpy array, got {type(tiles).__name__}")
    if tiles.dtype != np.uint8 or tiles.ndim != 4 or tiles.shape[3] != 3:
        raise ValueError(
            f"tiles must be an (N, H, W, 3) uint8 array, got {tiles.dtype} {tiles.shape}; "
            "stack RGB tiles along a first axis"
        )
