"""Convert tile arrays of any band count and dtype into JPEG or PNG bytes."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

JPEG_QUALITY = 90
# The ink-mask overlay colour (RGB). Amber contrasts with H&E and with every pen colour.
MASK_RGB = (255, 190, 0)

CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png"}


def to_uint8(tile: np.ndarray) -> np.ndarray:
    """Scale a tile of any dtype to uint8 (integers by their dtype maximum, floats from 0-1)."""
    if tile.dtype == np.uint8:
        return tile
    if tile.dtype == np.bool_:
        return tile.astype(np.uint8) * 255
    if np.issubdtype(tile.dtype, np.integer):
        maximum = np.iinfo(tile.dtype).max
        return (tile.astype(np.float32) * (255.0 / maximum)).clip(0, 255).astype(np.uint8)
    return (np.nan_to_num(tile.astype(np.float32)) * 255.0).clip(0, 255).astype(np.uint8)


def _as_hwc(tile: np.ndarray) -> np.ndarray:
    return tile[:, :, np.newaxis] if tile.ndim == 2 else tile


def _pil_image(tile: np.ndarray) -> Image.Image:
    """Return a PIL image: 1 band grey, 2 grey+alpha, 3 RGB, 4 RGBA, more: the first three."""
    tile = _as_hwc(to_uint8(tile))
    bands = tile.shape[2]
    if bands == 1:
        return Image.fromarray(tile[:, :, 0])
    if bands == 2:
        return Image.fromarray(np.ascontiguousarray(tile))
    if bands == 4:
        return Image.fromarray(np.ascontiguousarray(tile))
    return Image.fromarray(np.ascontiguousarray(tile[:, :, :3]))


def encode_tile(tile: np.ndarray, *, fmt: str) -> bytes:
    """Encode an (H, W, C) tile as JPEG (alpha composited over white) or PNG (alpha kept)."""
    image = _pil_image(tile)
    buffer = io.BytesIO()
    if fmt == "jpeg":
        if image.mode in {"LA", "RGBA"}:
            # Transparent areas of a slide are empty glass, which scanners show as white.
            background = Image.new("RGB", image.size, (255, 255, 255))
            background.paste(image.convert("RGBA"), mask=image.getchannel("A"))
            image = background
        elif image.mode != "L":
            image = image.convert("RGB")
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def encode_mask_tile(tile: np.ndarray) -> bytes:
    """Encode a mask tile as RGBA PNG: MASK_RGB where any band is above 0, transparent elsewhere."""
    tile = _as_hwc(tile)
    bands = tile.shape[2]
    # A trailing alpha band (2 or 4 bands) carries no ink information, so it is ignored.
    values = tile[:, :, : 3 if bands >= 3 else 1]
    inked = np.any(values > 0, axis=2)  # (H, W) bool
    rgba = np.zeros((*inked.shape, 4), dtype=np.uint8)  # (H, W, 4)
    rgba[inked] = (*MASK_RGB, 255)
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()
