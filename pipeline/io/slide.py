"""Slide interface, reader registry and ``open_slide``."""

from __future__ import annotations

import abc
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

import numpy as np
from PIL import Image

from pipeline.errors import SlideReadError, UnsupportedSlideError
from pipeline.io.info import SlideInfo

logger = logging.getLogger(__name__)

# Value written where a requested region lies outside the image: white, like empty glass.
OUTSIDE_VALUE = 255


class Slide(abc.ABC):
    """An open whole-slide image read in level-0 ("baseline") pixel coordinates.

    Subclasses implement ``_read_clipped``; the base class handles regions that
    reach past the image edge, output sizes and the context-manager protocol.
    """

    info: SlideInfo

    @abc.abstractmethod
    def _read_clipped(self, x: int, y: int, width: int, height: int, out_width: int,
                      out_height: int) -> np.ndarray:
        """Read a region inside the image, scaled to (out_height, out_width, 3) uint8 RGB."""

    def thumbnail(self, max_size: int = 512) -> Image.Image:
        """Return the whole slide as an RGB image whose longer side is at most ``max_size``."""
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1 pixel, got {max_size}")
        longest = max(self.info.width, self.info.height)
        downsample = max(1.0, longest / max_size)
        pixels = self.read_region(0, 0, self.info.width, self.info.height, downsample=downsample)
        return Image.fromarray(pixels, mode="RGB")

    def read_region(self, x: int, y: int, width: int, height: int, *,
                    downsample: float = 1.0) -> np.ndarray:
        """Read a region given in level-0 pixels, scaled down by ``downsample``.

        Returns an (ceil(height / downsample), ceil(width / downsample), 3) uint8 RGB
        array. Parts of the region outside the image are white.
        """
        if width < 1 or height < 1:
            raise ValueError(f"region size must be positive, got {width}x{height}")
        if not downsample >= 1.0:
            raise ValueError(f"downsample must be >= 1.0, got {downsample}")
        out_width = max(1, math.ceil(width / downsample))
        out_height = max(1, math.ceil(height / downsample))
        out = np.full((out_height, out_width, 3), OUTSIDE_VALUE, dtype=np.uint8)

        # Intersect with the image, then map the intersection into output pixels.
        left, top = max(0, x), max(0, y)
        right = min(self.info.width, x + width)
        bottom = min(self.info.height, y + height)
        if right <= left or bottom <= top:
            return out
        out_left = math.floor((left - x) / downsample)
        out_top = math.floor((top - y) / downsample)
        out_right = min(out_width, math.ceil((right - x) / downsample))
        out_bottom = min(out_height, math.ceil((bottom - y) / downsample))
        pixels = self._read_clipped(left, top, right - left, bottom - top,
                                    out_right - out_left, out_bottom - out_top)
        out[out_top:out_bottom, out_left:out_right] = pixels
        return out

    def associated_image(self, name: str) -> Image.Image:
        """Return an associated image (label, macro, thumbnail) as RGB."""
        raise KeyError(f"{self.info.path}: no associated image {name!r}")

    @abc.abstractmethod
    def close(self) -> None:
        """Release file handles; the slide cannot be read afterwards."""

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def to_rgb(pixels: np.ndarray, *, path: str | Path) -> np.ndarray:
    """Convert an (H, W, bands) or (H, W) uint8 array to (H, W, 3) RGB.

    Grey is repeated into three channels; an alpha band is composited on white.
    """
    if pixels.dtype != np.uint8:
        raise UnsupportedSlideError(path, f"{pixels.dtype} samples; only 8-bit slides are "
                                          "supported, convert the file to 8-bit RGB first")
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    bands = pixels.shape[2]
    if bands in (2, 4):
        colour = pixels[:, :, :bands - 1].astype(np.float32)
        alpha = pixels[:, :, bands - 1:].astype(np.float32) / 255.0  # (H, W, 1)
        composited = colour * alpha + OUTSIDE_VALUE * (1.0 - alpha)
        pixels = np.rint(composited).astype(np.uint8)
        bands -= 1
    if bands == 1:
        return np.repeat(pixels, 3, axis=2)
    if bands == 3:
        return np.ascontiguousarray(pixels)
    raise UnsupportedSlideError(path, f"{bands} bands per pixel; expected grey or RGB")


class SlideReader(Protocol):
    """A format reader: a capability check and an opener."""

    name: str

    def can_open(self, path: Path) -> bool:
        """Return whether this reader should try the file (a cheap check, no decoding)."""

    def open(self, path: Path) -> Slide:
        """Open the file or raise SlideReadError / UnsupportedSlideError."""


@dataclass
class _Registry:
    readers: list[SlideReader]


_REGISTRY = _Registry(readers=[])


def register_reader(reader: SlideReader, *, first: bool = False) -> None:
    """Add a reader; readers are tried in registration order unless ``first`` is set."""
    if first:
        _REGISTRY.readers.insert(0, reader)
    else:
        _REGISTRY.readers.append(reader)


def registered_readers() -> list[SlideReader]:
    """Return the readers in the order ``open_slide`` tries them."""
    if not _REGISTRY.readers:
        _register_default_readers()
    return list(_REGISTRY.readers)


def _register_default_readers() -> None:
    from pipeline.io.dicom_reader import DicomFrameReader
    from pipeline.io.large_image_reader import LargeImageReader
    from pipeline.io.tifffile_reader import TifffileReader

    register_reader(TifffileReader())
    register_reader(LargeImageReader())
    register_reader(DicomFrameReader())


class NotForThisReaderError(SlideReadError):
    """A reader does not recognise the file, so the next reader may try it."""


def open_slide(path: str | Path) -> Slide:
    """Open a slide file with the first reader that accepts it.

    Raises SlideReadError when the file is missing or its pixels cannot be decoded,
    and UnsupportedSlideError when it is not an 8-bit brightfield RGB image.
    """
    path = Path(path)
    if not path.is_file():
        raise SlideReadError(path, f"file not found: {path}")
    unrecognised: list[NotForThisReaderError] = []
    for reader in registered_readers():
        if not reader.can_open(path):
            continue
        try:
            slide = reader.open(path)
        except NotForThisReaderError as exc:
            unrecognised.append(exc)
            continue
        logger.debug("opened %s with reader %s", path, reader.name)
        return slide
    reasons = "; ".join(exc.reason for exc in unrecognised) or "no reader accepted it"
    raise UnsupportedSlideError(path, f"not a recognised slide format ({reasons})")
