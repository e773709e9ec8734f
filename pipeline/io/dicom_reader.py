"""Single-file tiled DICOM whole-slide images read frame by frame with pydicom.

OpenSlide, wsidicom and large-image reject VL Whole Slide Microscopy files that lack
attributes such as ImageType or DimensionOrganizationType. When the frame count
matches a full tiling of the total pixel matrix (TILED_FULL), the frames can still be
placed without per-frame positions, which is what this reader does.

The standard orders TILED_FULL frames row by row, but some writers store them column
by column. When the matrix has partial edge frames, the reader picks the order whose
edge frames carry uniform padding beyond the matrix.
"""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.errors import SlideReadError, UnsupportedSlideError
from pipeline.io import formats
from pipeline.io.info import SlideInfo
from pipeline.io.quiet import quiet_third_party
from pipeline.io.slide import NotForThisReaderError, Slide, to_rgb

logger = logging.getLogger(__name__)

VL_WHOLE_SLIDE_IMAGE = "1.2.840.10008.5.1.4.1.1.77.1.6"
# Decoded frames kept per open slide; a region read touches a handful.
FRAME_CACHE_SIZE = 64
# ImagedVolumeWidth/Height give a resolution only when both axes agree this closely.
MAX_SPACING_MISMATCH = 0.05


class DicomFrameReader:
    """Reader for single-file TILED_FULL DICOM WSI that the other readers reject."""

    name = "dicom-frames"

    def can_open(self, path: Path) -> bool:
        """Return whether the file is DICOM (checked from its preamble)."""
        return formats.is_dicom(path)

    def open(self, path: Path) -> Slide:
        """Open the file, or raise when it is not a full-tiled single-plane WSI."""
        return DicomFrameSlide(path)


class DicomFrameSlide(Slide):
    """A DICOM WSI instance whose frames tile the total pixel matrix row by row."""

    def __init__(self, path: Path) -> None:
        import pydicom

        self._path = path
        try:
            with quiet_third_party():
                dataset = pydicom.dcmread(path, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError, ValueError) as exc:
            raise NotForThisReaderError(path, f"DICOM header cannot be read ({exc})") from exc
        self._layout(dataset)
        self._column_major = False
        self._read_frame = functools.lru_cache(maxsize=FRAME_CACHE_SIZE)(self._decode_frame)
        self._read_frame(0)  # prove the pixel data decodes before accepting the file
        self._column_major = self._frames_column_major()
        if self._column_major:
            logger.warning("%s: frames are stored column by column, not row by row as DICOM "
                           "TILED_FULL requires; placing them column by column", path)
        self.info = self._info(dataset)

    def _layout(self, dataset: Any) -> None:
        if str(dataset.get("SOPClassUID", "")) != VL_WHOLE_SLIDE_IMAGE:
            raise NotForThisReaderError(self._path, "DICOM file is not a whole-slide image")
        required = ("TotalPixelMatrixColumns", "TotalPixelMatrixRows", "Columns", "Rows",
                    "NumberOfFrames", "SamplesPerPixel", "BitsAllocated")
        missing = [keyword for keyword in required if keyword not in dataset]
        if missing:
            raise NotForThisReaderError(self._path, f"DICOM WSI without {', '.join(missing)}")
        if int(dataset.BitsAllocated) != 8:
            raise UnsupportedSlideError(self._path, f"{dataset.BitsAllocated}-bit samples; only "
                                                     "8-bit brightfield RGB slides are supported")
        organisation = str(dataset.get("DimensionOrganizationType", "TILED_FULL"))
        self._width = int(dataset.TotalPixelMatrixColumns)
        self._height = int(dataset.TotalPixelMatrixRows)
        self._frame_width, self._frame_height = int(dataset.Columns), int(dataset.Rows)
        self._columns = math.ceil(self._width / self._frame_width)
        self._rows = math.ceil(self._height / self._frame_height)
        frames_needed = self._columns * self._rows
        if organisation != "TILED_FULL" or int(dataset.NumberOfFrames) != frames_needed:
            raise UnsupportedSlideError(
                self._path, f"{dataset.NumberOfFrames} frames organised as {organisation}; only "
                            f"one focal plane tiled row by row ({frames_needed} frames) is "
                            "supported")

    def _frame_index(self, row: int, column: int) -> int:
        if self._column_major:
            return column * self._rows + row
        return row * self._columns + column

    def _frames_column_major(self) -> bool:
        """Return whether the edge frames' padding fits column-major order better."""
        partial_width = self._width % self._frame_width
        partial_height = self._height % self._frame_height
        if (not partial_width and not partial_height) or self._rows == 1 or self._columns == 1:
            return False  # nothing distinguishes the orders
        self._column_major = False
        row_major = self._padding_variation(partial_width, partial_height)
        self._column_major = True
        column_major = self._padding_variation(partial_width, partial_height)
        return column_major < row_major

    def _padding_variation(self, partial_width: int, partial_height: int) -> float:
        """Mean deviation of the padding beyond the matrix in a few edge frames."""
        # Skip pixels next to the edge, where JPEG ringing spills into the padding.
        skip = 8
        variations = []
        for row in range(min(3, self._rows - 1)):
            if partial_width and self._frame_width - partial_width > 2 * skip:
                frame = self._read_frame(self._frame_index(row, self._columns - 1))
                variations.append(_variation(frame[:, partial_width + skip:]))
        for column in range(min(3, self._columns - 1)):
            if partial_height and self._frame_height - partial_height > 2 * skip:
                frame = self._read_frame(self._frame_index(self._rows - 1, column))
                variations.append(_variation(frame[partial_height + skip:]))
        return float(np.mean(variations)) if variations else 0.0

    def _decode_frame(self, index: int) -> np.ndarray:
        from pydicom.pixels import pixel_array

        try:
            with quiet_third_party():
                frame = pixel_array(str(self._path), index=index)
        except Exception as exc:
            # pydicom's decoder plugins raise many unrelated types on damaged data.
            raise SlideReadError(self._path, f"frame {index} cannot be decoded ({exc})") from exc
        return to_rgb(np.asarray(frame), path=self._path)

    def _info(self, dataset: Any) -> SlideInfo:
        mpp = _pixel_spacing_um(dataset, self._width, self._height)
        return SlideInfo(
            path=str(self._path), format="dicom", reader="pydicom", width=self._width,
            height=self._height, level_count=1, level_downsamples=[1.0],
            tile_width=self._frame_width, tile_height=self._frame_height,
            mpp_x=mpp[0] if mpp else None, mpp_y=mpp[1] if mpp else None, magnification=None,
            associated_images=[], compression=formats.dicom_compression(self._path),
            bands=int(dataset.SamplesPerPixel))

    def _read_clipped(self, x: int, y: int, width: int, height: int, out_width: int,
                      out_height: int) -> np.ndarray:
        # NOTE: one resolution per file, so reduced reads decode every frame they cover.
        region = np.empty((height, width, 3), dtype=np.uint8)
        first_row, last_row = y // self._frame_height, (y + height - 1) // self._frame_height
        first_column = x // self._frame_width
        last_column = (x + width - 1) // self._frame_width
        for row in range(first_row, last_row + 1):
            for column in range(first_column, last_column + 1):
                frame = self._read_frame(self._frame_index(row, column))
                left, top = column * self._frame_width, row * self._frame_height
                # Overlap of the frame and the region, in level-0 pixels.
                x0, y0 = max(x, left), max(y, top)
                x1 = min(x + width, left + self._frame_width)
                y1 = min(y + height, top + self._frame_height)
                region[y0 - y:y1 - y, x0 - x:x1 - x] = \
                    frame[y0 - top:y1 - top, x0 - left:x1 - left]
        if (out_width, out_height) == (width, height):
            return region
        return np.asarray(cv2.resize(region, (out_width, out_height),
                                     interpolation=cv2.INTER_AREA), dtype=np.uint8)

    def close(self) -> None:
        """Drop decoded frames."""
        self._read_frame.cache_clear()


def _variation(pixels: np.ndarray) -> float:
    """Mean absolute deviation from the median colour: near 0 for padding."""
    values = pixels.reshape(-1, 3).astype(np.float32)
    return float(np.abs(values - np.median(values, axis=0)).mean())


def _pixel_spacing_um(dataset: Any, width: int, height: int) -> tuple[float, float] | None:
    """Return (mpp_x, mpp_y) from PixelSpacing, else from a consistent imaged volume."""
    shared = dataset.get("SharedFunctionalGroupsSequence")
    if shared:
        measures = shared[0].get("PixelMeasuresSequence")
        if measures and measures[0].get("PixelSpacing"):
            row_spacing, column_spacing = (float(value) for value in measures[0].PixelSpacing)
            return (round(column_spacing * 1000, 6), round(row_spacing * 1000, 6))
    volume_width = dataset.get("ImagedVolumeWidth")
    volume_height = dataset.get("ImagedVolumeHeight")
    if volume_width and volume_height:
        mpp_x = float(volume_width) * 1000 / width
        mpp_y = float(volume_height) * 1000 / height
        if abs(mpp_x - mpp_y) <= MAX_SPACING_MISMATCH * max(mpp_x, mpp_y):
            return (round(mpp_x, 6), round(mpp_y, 6))
        logger.info("%s: imaged volume %s x %s mm does not match %d x %d px with square "
                    "pixels; resolution left unknown", dataset.filename if hasattr(
                        dataset, "filename") else "DICOM file", volume_width, volume_height,
                    width, height)
    return None
