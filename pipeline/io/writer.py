"""Pyramidal tiled BigTIFF writer for restored slides and ink masks.

Level 0 arrives as a stream of tiles in row-major order and is never held whole.
Each tile is also reduced 2x into a memory-mapped level 1 in a temporary folder,
and every further level is reduced from the one above it. Levels after the first
are separate pages flagged as reduced images (NewSubfileType 1), the layout that
OpenSlide opens as "generic-tiff" and large-image opens with its TIFF source.
"""

from __future__ import annotations

import logging
import math
import mmap
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tifffile

from pipeline.io.jpeg_tiles import JpegLayout

logger = logging.getLogger(__name__)

# Rows of a level processed at once when reducing it to the next level.
_STRIP_ROWS = 512
# Raw bytes tifffile gathers before compressing them (in threads); its default of
# 512 MB would dominate the memory of a run.
_ENCODE_BUFFER_BYTES = 32 << 20

Reduction = Literal["mean", "max"]


@dataclass(frozen=True)
class CopiedTile:
    """A level-0 tile written as stored in the source, with its decoded pixels."""

    data: bytes
    pixels: np.ndarray  # (tile_height, tile_width, 3) uint8, used for lower levels


@dataclass(frozen=True)
class EncodedTile:
    """A level-0 tile encoded by the caller (for example with the source's JPEG tables)."""

    data: bytes
    pixels: np.ndarray


Level0Tile = np.ndarray | CopiedTile | EncodedTile


@dataclass(frozen=True)
class PyramidSpec:
    """Geometry and encoding of one pyramid file."""

    width: int
    height: int
    tile_width: int
    tile_height: int
    samples: int = 3
    compression: Literal["jpeg", "deflate", "lzw", "zstd"] = "deflate"
    jpeg_quality: int = 90
    mpp: tuple[float, float] | None = None
    reduction: Reduction = "mean"
    jpeg_copy: JpegLayout | None = None  # level 0 contains copied and source-encoded tiles
    description: str = "InkWeb pyramid"
    software: str = "inkweb"
    # True omits ImageDescription and Software (and ``description``/``software`` are
    # ignored), so the pages carry only geometry, encoding and resolution tags.
    deidentified: bool = False

    def level_sizes(self) -> list[tuple[int, int]]:
        """Return (width, height) of every level: halved until one tile covers it."""
        sizes = [(self.width, self.height)]
        while sizes[-1][0] > self.tile_width or sizes[-1][1] > self.tile_height:
            width, height = sizes[-1]
            # ceil keeps the last odd column/row; OpenSlide derives downsamples from sizes.
            sizes.append((math.ceil(width / 2), math.ceil(height / 2)))
        return sizes

    @property
    def tiles_across(self) -> int:
        """Level-0 tiles per row."""
        return math.ceil(self.width / self.tile_width)

    @property
    def tile_count(self) -> int:
        """Number of level-0 tiles."""
        return self.tiles_across * math.ceil(self.height / self.tile_height)


def write_pyramid(path: Path, spec: PyramidSpec, tiles: Iterable[Level0Tile], *,
                  workdir: Path | None = None) -> list[tuple[int, int]]:
    """Write a pyramid to ``path`` from level-0 tiles given in row-major order.

    Each tile is the part of the grid cell inside the image, or a full-size
    CopiedTile/EncodedTile. The file is written under a temporary name in the same
    folder and renamed when complete. Returns the (width, height) of every level.
    """
    sizes = spec.level_sizes()
    temporary = path.with_name(f".{path.name}.partial")
    scratch = Path(tempfile.mkdtemp(prefix="inkweb-pyramid-", dir=workdir))
    try:
        reduced = _open_level_memmaps(scratch, spec, sizes)
        with tifffile.TiffWriter(temporary, bigtiff=True) as writer:
            _write_level0(writer, spec, tiles, reduced[0] if reduced else None)
            for level in range(1, len(sizes)):
                if level >= 2:
                    _reduce_level(reduced[level - 2], reduced[level - 1], spec.reduction)
                _write_reduced_level(writer, spec, reduced[level - 1], sizes[level])
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)
    logger.info("wrote %s: %d levels, level 0 %dx%d", path, len(sizes), spec.width, spec.height)
    return sizes


def _open_level_memmaps(scratch: Path, spec: PyramidSpec,
                        sizes: list[tuple[int, int]]) -> list[np.memmap]:
    maps = []
    for level, (width, height) in enumerate(sizes[1:], start=1):
        maps.append(np.memmap(scratch / f"level-{level}.raw", dtype=np.uint8, mode="w+",
                              shape=(height, width, spec.samples)))
    return maps


def _write_level0(writer: tifffile.TiffWriter, spec: PyramidSpec, tiles: Iterable[Level0Tile],
                  level1: np.memmap | None) -> None:
    # tifffile takes an iterator of encoded bytes (copy mode) or of arrays (it encodes).
    stream: Any = _level0_stream(spec, tiles, level1)
    common = _common_tags(spec, downsample=(1.0, 1.0))
    # Single-band images are passed as (H, W): tifffile reads a trailing 1 as a width.
    shape: tuple[int, ...] = (spec.height, spec.width, spec.samples)
    if spec.samples == 1:
        shape = (spec.height, spec.width)
    if spec.jpeg_copy is not None:
        layout = spec.jpeg_copy
        writer.write(stream, shape=shape, dtype=np.uint8, tile=(spec.tile_height, spec.tile_width),
                     compression="jpeg", photometric="rgb", jpegtables=layout.jpegtables,
                     subsampling=layout.subsampling,
                     compressionargs={"outcolorspace": "RGB" if layout.photometric == "rgb"
                                      else "YCBCR"},
                     subfiletype=0, **common)
        return
    writer.write(stream, shape=shape, dtype=np.uint8, tile=(spec.tile_height, spec.tile_width),
                 subfiletype=0, **_encoding_args(spec), **common)


def _level0_stream(spec: PyramidSpec, tiles: Iterable[Level0Tile],
                   level1: np.memmap | None) -> Iterator[bytes | np.ndarray]:
    count = 0
    for index, tile in enumerate(tiles):
        if index >= spec.tile_count:
            raise ValueError(f"more than {spec.tile_count} level-0 tiles were supplied")
        row, column = divmod(index, spec.tiles_across)
        left, top = column * spec.tile_width, row * spec.tile_height
        valid_width = min(spec.tile_width, spec.width - left)
        valid_height = min(spec.tile_height, spec.height - top)
        if isinstance(tile, (CopiedTile, EncodedTile)):
            pixels = tile.pixels[:valid_height, :valid_width]
        else:
            pixels = tile.reshape(tile.shape[0], tile.shape[1], -1)
            if pixels.shape[:2] != (valid_height, valid_width):
                raise ValueError(f"tile {index} has shape {pixels.shape[:2]}; expected "
                                 f"{(valid_height, valid_width)}")
        if level1 is not None:
            reduced = _reduce_block(pixels, spec.reduction)
            level1[top // 2:top // 2 + reduced.shape[0],
                   left // 2:left // 2 + reduced.shape[1]] = reduced
            if column == spec.tiles_across - 1:
                _release(level1)
        if isinstance(tile, (CopiedTile, EncodedTile)):
            if spec.jpeg_copy is None:
                raise ValueError("encoded tiles need PyramidSpec.jpeg_copy")
            yield tile.data
        elif spec.jpeg_copy is not None:
            raise ValueError("a pyramid with copied JPEG tiles needs every tile encoded")
        else:
            padded = _padded(pixels, spec)
            yield padded[:, :, 0] if spec.samples == 1 else padded
        count += 1
    if count != spec.tile_count:
        raise ValueError(f"{count} level-0 tiles were supplied; the image needs {spec.tile_count}")


def _release(pixels: np.memmap) -> None:
    """Write a memory map's dirty pages to its file and drop them from the process.

    Without this, every page written stays resident and counts towards the process
    size until the map is closed. The data stays readable from the page cache.
    """
    pixels.flush()
    handle = getattr(pixels, "_mmap", None)
    if handle is not None and hasattr(mmap, "MADV_DONTNEED"):
        handle.madvise(mmap.MADV_DONTNEED)


def _padded(pixels: np.ndarray, spec: PyramidSpec) -> np.ndarray:
    """Return a full-size tile; edge tiles are padded by repeating their last row and column."""
    height, width = pixels.shape[:2]
    if (height, width) == (spec.tile_height, spec.tile_width):
        return np.ascontiguousarray(pixels)
    return np.pad(pixels, ((0, spec.tile_height - height), (0, spec.tile_width - width), (0, 0)),
                  mode="edge")


def _reduce_block(pixels: np.ndarray, reduction: Reduction) -> np.ndarray:
    """Halve an (H, W, S) block: mean (images) or max (masks) over 2x2 pixels."""
    height, width = pixels.shape[:2]
    if height % 2 or width % 2:
        # Repeat the last odd row/column so that it reduces to itself.
        pixels = np.pad(pixels, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    # The four pixels of each 2x2 block, as strided views (faster than reshape + reduce).
    corners = (pixels[0::2, 0::2], pixels[1::2, 0::2], pixels[0::2, 1::2], pixels[1::2, 1::2])
    if reduction == "max":
        return np.maximum(np.maximum(corners[0], corners[1]), np.maximum(corners[2], corners[3]))
    summed = corners[0].astype(np.uint16) + corners[1] + corners[2] + corners[3]
    return ((summed + 2) // 4).astype(np.uint8)  # rounded mean


def _reduce_level(source: np.memmap, target: np.memmap, reduction: Reduction) -> None:
    for top in range(0, source.shape[0], _STRIP_ROWS):
        strip = np.asarray(source[top:top + _STRIP_ROWS])
        reduced = _reduce_block(strip, reduction)
        target[top // 2:top // 2 + reduced.shape[0]] = reduced
        _release(source)
        _release(target)


def _write_reduced_level(writer: tifffile.TiffWriter, spec: PyramidSpec, pixels: np.ndarray,
                         size: tuple[int, int]) -> None:
    downsample = (spec.width / size[0], spec.height / size[1])
    shape: tuple[int, ...] = pixels.shape if spec.samples > 1 else pixels.shape[:2]
    # Tiles are handed over one by one so that the map's pages can be released per row.
    tiles: Any = _level_tiles(pixels, spec)
    writer.write(tiles, shape=shape, dtype=np.uint8, tile=(spec.tile_height, spec.tile_width),
                 subfiletype=1, **_encoding_args(spec),
                 **_common_tags(spec, downsample=downsample, with_description=False))


def _level_tiles(pixels: np.ndarray, spec: PyramidSpec) -> Iterator[np.ndarray]:
    """Yield full-size tiles of a reduced level in row-major order."""
    height, width = pixels.shape[:2]
    for top in range(0, height, spec.tile_height):
        for left in range(0, width, spec.tile_width):
            tile = _padded(np.asarray(pixels[top:top + spec.tile_height,
                                             left:left + spec.tile_width]), spec)
            yield tile[:, :, 0] if spec.samples == 1 else tile
        if isinstance(pixels, np.memmap):
            _release(pixels)


def _encoding_args(spec: PyramidSpec) -> dict[str, Any]:
    photometric = "minisblack" if spec.samples == 1 else "rgb"
    if spec.compression == "jpeg":
        # YCbCr without chroma subsampling (4:4:4): stain colours at cell edges survive.
        return {"compression": "jpeg", "compressionargs": {"level": spec.jpeg_quality},
                "photometric": photometric, "subsampling": (1, 1)}
    codec = {"deflate": "adobe_deflate", "lzw": "lzw", "zstd": "zstd"}[spec.compression]
    # Horizontal differencing helps photographs, not 0/255 masks.
    return {"compression": codec, "predictor": spec.samples > 1, "photometric": photometric}


def _common_tags(spec: PyramidSpec, *, downsample: tuple[float, float],
                 with_description: bool = True) -> dict[str, Any]:
    # tifffile writes its own name as Software unless it is given False.
    tags: dict[str, Any] = {"software": False if spec.deidentified else spec.software,
                            "metadata": None, "buffersize": _ENCODE_BUFFER_BYTES}
    if with_description and not spec.deidentified:
        tags["description"] = spec.description
    if spec.mpp is not None:
        # TIFF resolution is pixels per resolution unit: 10 000 um per cm / (um per pixel).
        tags["resolution"] = (1e4 / (spec.mpp[0] * downsample[0]),
                              1e4 / (spec.mpp[1] * downsample[1]))
        tags["resolutionunit"] = "CENTIMETER"
    return tags
