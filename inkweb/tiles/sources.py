"""Tile readers: large-image for every file it opens, the pipeline reader as a fallback.

large-image caches its open tile sources per process. The pipeline reader is used for an
original that large-image cannot open (e.g. some DICOM files) or whose size it reports
differently (large-image does not apply the TIFF Orientation tag of every format, and
the pipeline does), so that original and restored images share one coordinate system.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from pathlib import Path
from typing import Protocol

import large_image
import numpy as np
import tifffile
from large_image.exceptions import TileSourceError

from inkweb.tiles.geometry import PyramidGeometry
from pipeline import open_slide

logger = logging.getLogger(__name__)

FALLBACK_TILE_SIZE = 256


class TileReader(Protocol):
    """Interface of a tile source as the tile selectors use it."""

    geometry: PyramidGeometry
    mm_x: float | None
    mm_y: float | None

    def read_tile(self, *, z: int, x: int, y: int) -> np.ndarray:
        """Return tile (x, y) of level z as an (H, W, C) array cropped to the image edge."""


class LargeImageReader:
    """Reader over a large-image tile source."""

    def __init__(self, path: Path) -> None:
        self.source = large_image.open(str(path))
        metadata = self.source.getMetadata()
        self.geometry = PyramidGeometry(
            size_x=int(metadata["sizeX"]),
            size_y=int(metadata["sizeY"]),
            tile_width=int(metadata["tileWidth"]),
            tile_height=int(metadata["tileHeight"]),
            levels=int(metadata["levels"]),
        )
        self.mm_x = metadata.get("mm_x")
        self.mm_y = metadata.get("mm_y")

    def read_tile(self, *, z: int, x: int, y: int) -> np.ndarray:  # noqa: D102
        tile = self.source.getTile(x, y, z, numpyAllowed="always")
        tile = tile[:, :, np.newaxis] if tile.ndim == 2 else tile  # (H, W, C)
        # large-image pads edge tiles to the full tile size; OpenSeadragon expects the
        # image of an edge tile to cover only the pixels inside the level.
        width, height = self.geometry.tile_size(z, x, y)
        return tile[:height, :width]


class PipelineReader:
    """Reader that cuts tiles from the pipeline's read_region at power-of-two downsamples."""

    def __init__(self, path: Path) -> None:
        self.slide = open_slide(path)
        info = self.slide.info
        longest = max(int(info.width), int(info.height), 1)
        # Enough levels that the lowest one fits in a single tile.
        levels = max(1, math.ceil(math.log2(longest / FALLBACK_TILE_SIZE)) + 1)
        self.geometry = PyramidGeometry(
            size_x=int(info.width),
            size_y=int(info.height),
            tile_width=FALLBACK_TILE_SIZE,
            tile_height=FALLBACK_TILE_SIZE,
            levels=levels,
        )
        self.mm_x = info.mpp_x / 1000 if info.mpp_x else None
        self.mm_y = info.mpp_y / 1000 if info.mpp_y else None
        # Slide readers keep per-handle decoder state; one request at a time per file.
        self._lock = threading.Lock()

    def read_tile(self, *, z: int, x: int, y: int) -> np.ndarray:  # noqa: D102
        factor = self.geometry.downsample(z)
        width, height = self.geometry.tile_size(z, x, y)
        left = x * self.geometry.tile_width * factor
        top = y * self.geometry.tile_height * factor
        region_width = min(width * factor, self.geometry.size_x - left)
        region_height = min(height * factor, self.geometry.size_y - top)
        with self._lock:
            region = self.slide.read_region(
                left, top, region_width, region_height, downsample=float(factor)
            )
        return region[:height, :width]


def _is_reoriented_tiff(path: Path) -> bool:
    """Return whether a TIFF's Orientation tag requires a rotation or a mirror.

    large-image 1.35's TIFF source turns Orientation 6 counter-clockwise where the TIFF
    specification (and Pillow) turn it clockwise, so such files use the pipeline reader.
    """
    try:
        with tifffile.TiffFile(path) as tiff:
            tag = tiff.pages.first.tags.get("Orientation")
    except (tifffile.TiffFileError, OSError, ValueError):
        return False
    return tag is not None and int(tag.value) != 1


@functools.lru_cache(maxsize=64)
def _reader_for(path: str, token: str, expected_size: tuple[int, int] | None) -> TileReader:
    # `token` (a checksum) is part of the cache key so a replaced file is reopened.
    if _is_reoriented_tiff(Path(path)):
        logger.info("%s has a TIFF Orientation tag; using the pipeline reader", path)
        return PipelineReader(Path(path))
    try:
        reader: TileReader = LargeImageReader(Path(path))
    except TileSourceError as error:
        logger.info("large-image cannot open %s (%s); using the pipeline reader", path, error)
        return PipelineReader(Path(path))

    size = (reader.geometry.size_x, reader.geometry.size_y)
    if expected_size is not None and size != expected_size:
        logger.warning(
            "large-image reads %s as %dx%d but the slide is %dx%d (orientation); "
            "using the pipeline reader",
            path,
            *size,
            *expected_size,
        )
        return PipelineReader(Path(path))
    return reader


def tile_reader_open(
    *, path: Path, token: str, expected_size: tuple[int, int] | None = None
) -> TileReader:
    """Return a cached reader of `path`; `expected_size` is the slide's (width, height)."""
    return _reader_for(str(path), token, expected_size)
