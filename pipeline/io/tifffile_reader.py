"""Generic and OME TIFF slides read with tifffile, the Orientation tag applied.

Two problems of large-image 1.35's libtiff source make this reader worth having:

* Its region reads turn Orientation 6 the wrong way (they match Orientation 8).
  TIFF 6.0 defines 6 ("RightTop") as: stored row 0 is the visual right side and
  stored column 0 the visual top, a 90 degree clockwise turn for display, which is
  also what libtiff's RGBA interface and Pillow produce.
* Reading every tile of a slide through it grows the process by about half a
  megabyte per tile (pylibtiff 0.7.0, measured with a 4-item tile cache), so a
  pipeline run over a large slide would need gigabytes. tifffile stays flat.

Vendor formats (SVS, NDPI and the like) stay with large-image and OpenSlide.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import cv2
import numpy as np
import tifffile
import zarr

from pipeline.errors import SlideReadError, UnsupportedSlideError
from pipeline.io import formats
from pipeline.io.info import SlideInfo
from pipeline.io.quiet import quiet_third_party
from pipeline.io.slide import NotForThisReaderError, Slide, to_rgb

logger = logging.getLogger(__name__)

# Orientation values that need a transpose, a vertical flip or a horizontal flip,
# applied in that order (TIFF 6.0, tag 274).
_TRANSPOSED = frozenset({5, 6, 7, 8})
_FLIPPED_ROWS = frozenset({3, 4, 7, 8})
_FLIPPED_COLUMNS = frozenset({2, 3, 6, 7})

# OME PhysicalSize units in micrometres.
_OME_UNITS_UM = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}

# Resolutions outside this range (um/px) are placeholders such as 72 dpi, not scans.
_PLAUSIBLE_MPP = (0.01, 50.0)


class TifffileReader:
    """Reader for generic and OME TIFF files (not vendor formats such as SVS)."""

    name = "tifffile"

    def can_open(self, path: Path) -> bool:
        """Return whether the file is a TIFF that no vendor reader claims."""
        level0 = formats.read_tiff_level0(path)
        return level0 is not None and level0.kind in ("generic-tiff", "ome-tiff")

    def open(self, path: Path) -> Slide:
        """Open the file and decode a thumbnail to prove the pixels are readable.

        Files tifffile cannot decode are left to the next reader (large-image).
        """
        return TifffileSlide(path)


class TifffileSlide(Slide):
    """A TIFF pyramid read with tifffile, with the Orientation tag applied."""

    def __init__(self, path: Path) -> None:
        self._path = path
        try:
            self._tif = tifffile.TiffFile(path)
        except (tifffile.TiffFileError, OSError) as exc:
            raise NotForThisReaderError(path, f"tifffile cannot parse it ({exc})") from exc
        try:
            self._setup()
            self.thumbnail(64)
        except UnsupportedSlideError:
            self._tif.close()
            raise
        except Exception as exc:
            # tifffile and imagecodecs raise many unrelated types on data they cannot
            # decode; another reader may still manage (libtiff reads 2-sample JPEG).
            self._tif.close()
            raise NotForThisReaderError(path, f"tifffile cannot decode it ({exc})") from exc

    def _setup(self) -> None:
        series = self._tif.series[0]
        page = self._tif.pages.first
        tag = page.tags.get(274)
        self._orientation = int(tag.value) if tag else 1
        if page.dtype != np.uint8:
            raise UnsupportedSlideError(self._path, f"{page.dtype} samples; only 8-bit "
                                                     "brightfield RGB slides are supported, "
                                                     "convert it to 8-bit RGB first")
        if page.samplesperpixel > 4:
            raise UnsupportedSlideError(self._path, f"{page.samplesperpixel} samples per pixel: "
                                                     "not a brightfield RGB slide")
        self._levels = [zarr.open(self._tif.aszarr(series=0, level=level), mode="r")
                        for level in range(len(series.levels))]
        self._stored_sizes = [(int(level.shape[1]), int(level.shape[0])) for level in self._levels]
        width, height = self._display_size(self._stored_sizes[0])
        tile_width, tile_height = int(page.tilewidth or width), int(page.tilelength or height)
        if self._orientation in _TRANSPOSED:
            tile_width, tile_height = tile_height, tile_width
        mpp = _ome_mpp(self._tif.ome_metadata) if self._tif.is_ome else _resolution_mpp(page)
        level0 = formats.read_tiff_level0(self._path)
        self.info = SlideInfo(
            path=str(self._path), format=level0.kind if level0 else "generic-tiff",
            reader="tifffile", width=width, height=height, level_count=len(self._levels),
            level_downsamples=[round(self._stored_sizes[0][0] / size[0], 4)
                               for size in self._stored_sizes],
            tile_width=tile_width, tile_height=tile_height,
            mpp_x=mpp[0] if mpp else None, mpp_y=mpp[1] if mpp else None, magnification=None,
            associated_images=[], compression=level0.compression if level0 else "unknown",
            bands=int(page.samplesperpixel))

    def _display_size(self, stored: tuple[int, int]) -> tuple[int, int]:
        return (stored[1], stored[0]) if self._orientation in _TRANSPOSED else stored

    def _read_clipped(self, x: int, y: int, width: int, height: int, out_width: int,
                      out_height: int) -> np.ndarray:
        level = self._level_for(width / out_width)
        # Native downsample of the chosen level, per display axis.
        stored_width, stored_height = self._stored_sizes[level]
        display_width, display_height = self._display_size((stored_width, stored_height))
        scale_x, scale_y = display_width / self.info.width, display_height / self.info.height
        left, right = math.floor(x * scale_x), max(math.floor(x * scale_x) + 1,
                                                  math.ceil((x + width) * scale_x))
        top, bottom = math.floor(y * scale_y), max(math.floor(y * scale_y) + 1,
                                                  math.ceil((y + height) * scale_y))
        block = self._read_display_block(level, left, top, right - left, bottom - top)
        rgb = to_rgb(block, path=self._path)
        if rgb.shape[:2] != (out_height, out_width):
            rgb = cv2.resize(rgb, (out_width, out_height), interpolation=cv2.INTER_AREA)
        return rgb

    def _level_for(self, downsample: float) -> int:
        best = 0
        for level, (stored_width, _) in enumerate(self._stored_sizes):
            if self._stored_sizes[0][0] / stored_width <= downsample + 1e-6:
                best = level
        return best

    def _read_display_block(self, level: int, left: int, top: int, width: int,
                            height: int) -> np.ndarray:
        """Read a block given in the level's display coordinates and orient it."""
        stored_width, stored_height = self._stored_sizes[level]
        display_width, display_height = self._display_size((stored_width, stored_height))
        # Undo the flips (they act on the transposed frame), then the transpose.
        columns = (display_width - left - width, display_width - left) \
            if self._orientation in _FLIPPED_COLUMNS else (left, left + width)
        rows = (display_height - top - height, display_height - top) \
            if self._orientation in _FLIPPED_ROWS else (top, top + height)
        if self._orientation in _TRANSPOSED:
            columns, rows = rows, columns
        try:
            with quiet_third_party():
                block = np.asarray(self._levels[level][rows[0]:rows[1], columns[0]:columns[1]])
        except Exception as exc:
            # See __init__: decoder errors come in many types.
            raise SlideReadError(self._path, f"decoding level {level} failed ({exc})") from exc
        return _orient(block, self._orientation)

    def close(self) -> None:
        """Close the TIFF file."""
        self._tif.close()


def _orient(block: np.ndarray, orientation: int) -> np.ndarray:
    """Turn a stored (H, W[, S]) block into display orientation."""
    if block.ndim == 2:
        block = block[:, :, np.newaxis]
    if orientation in _TRANSPOSED:
        block = block.transpose(1, 0, 2)
    if orientation in _FLIPPED_ROWS:
        block = block[::-1]
    if orientation in _FLIPPED_COLUMNS:
        block = block[:, ::-1]
    return np.ascontiguousarray(block)


def _ome_mpp(ome_xml: str | None) -> tuple[float, float] | None:
    """Return (mpp_x, mpp_y) from the first OME Pixels element, or None."""
    if not ome_xml:
        return None
    try:
        root = ElementTree.fromstring(ome_xml)
    except ElementTree.ParseError:
        return None
    pixels = next((element for element in root.iter() if element.tag.endswith("Pixels")), None)
    if pixels is None:
        return None
    values = []
    for axis in ("X", "Y"):
        size = pixels.get(f"PhysicalSize{axis}")
        factor = _OME_UNITS_UM.get(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        if size is None or factor is None:
            return None
        values.append(round(float(size) * factor, 6))
    return (values[0], values[1])


def _resolution_mpp(page: Any) -> tuple[float, float] | None:
    """Return (mpp_x, mpp_y) from the TIFF resolution tags when plausible."""
    unit_tag, x_tag, y_tag = page.tags.get(296), page.tags.get(282), page.tags.get(283)
    if not (unit_tag and x_tag and y_tag):
        return None
    micrometres_per_unit = {2: 25_400.0, 3: 10_000.0}.get(int(unit_tag.value))
    if micrometres_per_unit is None:
        return None
    values = []
    for tag in (x_tag, y_tag):
        numerator, denominator = tag.value
        if not numerator or not denominator:
            return None
        values.append(micrometres_per_unit * denominator / numerator)
    if not all(_PLAUSIBLE_MPP[0] < value < _PLAUSIBLE_MPP[1] for value in values):
        return None
    return (round(values[0], 6), round(values[1], 6))
