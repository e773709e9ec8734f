"""Slides read through large-image (OpenSlide, libtiff, tifffile, PIL and DICOM sources)."""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any

import cachetools
import cv2
import numpy as np
from PIL import Image

from pipeline.errors import SlideReadError, UnsupportedSlideError
from pipeline.io import formats
from pipeline.io.info import SlideInfo
from pipeline.io.quiet import configure_large_image, quiet_third_party
from pipeline.io.slide import NotForThisReaderError, Slide, to_rgb

logger = logging.getLogger(__name__)

# Largest side of the thumbnail decoded by the open-time probe, in pixels.
PROBE_THUMBNAIL_SIZE = 64
# Decoded tiles kept per open slide.
TILE_CACHE_BYTES = 128 << 20


class LargeImageReader:
    """Reader for every format a large-image tile source accepts."""

    name = "large-image"

    def can_open(self, path: Path) -> bool:
        """Return True: large-image decides by content, so every file is tried."""
        return True

    def open(self, path: Path) -> Slide:
        """Open ``path`` and decode one tile and a thumbnail to prove the pixels are readable."""
        return LargeImageSlide(path)


class LargeImageSlide(Slide):
    """A slide backed by a large-image tile source."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._source = _open_tile_source(path)
        metadata = self._source.getMetadata()
        _check_brightfield(path, metadata)
        _probe_decode(path, self._source)
        self.info = _build_info(path, self._source, metadata)

    def _read_clipped(self, x: int, y: int, width: int, height: int, out_width: int,
                      out_height: int) -> np.ndarray:
        import large_image

        region = {"left": x, "top": y, "width": width, "height": height,
                  "units": "base_pixels"}
        kwargs: dict[str, Any] = {}
        if (out_width, out_height) != (width, height):
            kwargs["output"] = {"maxWidth": out_width, "maxHeight": out_height}
        try:
            with quiet_third_party():
                pixels, _ = self._source.getRegion(
                    region=region, format=large_image.constants.TILE_FORMAT_NUMPY, **kwargs)
        except Exception as exc:
            # Decoders behind large-image raise many unrelated types (libtiff IOError,
            # OpenSlideError, PIL errors); a worker must get one error type it can report.
            raise SlideReadError(
                self._path, f"decoding region x={x} y={y} {width}x{height} failed: {exc}"
            ) from exc
        rgb = to_rgb(np.asarray(pixels), path=self._path)
        if rgb.shape[:2] != (out_height, out_width):
            # large-image keeps the aspect ratio when scaling, which can be off by a pixel.
            rgb = cv2.resize(rgb, (out_width, out_height), interpolation=cv2.INTER_AREA)
        return rgb

    def associated_image(self, name: str) -> Image.Image:
        """Return the associated image ``name`` (see ``info.associated_images``) as RGB."""
        import large_image

        if name not in self.info.associated_images:
            raise KeyError(f"{self._path.name}: no associated image {name!r}; "
                           f"available: {self.info.associated_images}")
        with quiet_third_party():
            pixels, _ = self._source.getAssociatedImage(
                name, format=large_image.constants.TILE_FORMAT_NUMPY)
        return Image.fromarray(to_rgb(np.asarray(pixels), path=self._path), mode="RGB")

    def close(self) -> None:
        """Drop the reference to the tile source; large-image keeps its own cache."""
        self._source = None


def _open_tile_source(path: Path) -> Any:
    import large_image
    from large_image.exceptions import TileSourceError

    configure_large_image()
    try:
        with quiet_third_party():
            # noCache: a private source, so that its tile cache can be replaced below.
            source = large_image.open(str(path), noCache=True)
    except TileSourceError as exc:
        raise NotForThisReaderError(path, "large-image has no tile source for it") from exc
    # large-image's shared tile cache sizes itself in 512 KB items (1/32 of memory,
    # about 1500 items here), which reaches gigabytes with 1024-pixel tiles when a
    # run reads every tile once. The pipeline gets a small cache of its own instead.
    source.cache = cachetools.LRUCache(maxsize=TILE_CACHE_BYTES, getsizeof=_cached_size)
    source.cache_lock = threading.Lock()
    return source


def _cached_size(value: Any) -> int:
    """Return the memory an entry of the tile cache holds, in bytes (an estimate)."""
    if isinstance(value, np.ndarray):
        return max(1, value.nbytes)
    if isinstance(value, (bytes, bytearray)):
        return max(1, len(value))
    if isinstance(value, Image.Image):
        return max(1, value.width * value.height * len(value.getbands()))
    return 1 << 20


def _check_brightfield(path: Path, metadata: dict[str, Any]) -> None:
    dtype = str(metadata.get("dtype", "uint8"))
    if dtype != "uint8":
        raise UnsupportedSlideError(
            path, f"{dtype} samples; only 8-bit brightfield RGB slides are supported, "
                  "convert it to 8-bit RGB first")
    frames = metadata.get("frames") or []
    bands = int(metadata.get("bandCount") or 3)
    if len(frames) > 1:
        channels = metadata.get("channels") or []
        index_range = metadata.get("IndexRange") or {}
        if channels or "IndexC" in index_range:
            count = len(channels) or index_range.get("IndexC")
            raise UnsupportedSlideError(
                path, f"multi-channel fluorescence image ({count} channels of {bands} band): "
                      "not a brightfield RGB slide")
        raise UnsupportedSlideError(
            path, f"{len(frames)} frames (z-stack or time series); only single-plane "
                  "brightfield slides are supported")
    if bands > 4:
        raise UnsupportedSlideError(path, f"{bands} bands per pixel: not a brightfield RGB slide")


def _probe_decode(path: Path, source: Any) -> None:
    import large_image

    try:
        with quiet_third_party():
            source.getThumbnail(width=PROBE_THUMBNAIL_SIZE, height=PROBE_THUMBNAIL_SIZE,
                                format=large_image.constants.TILE_FORMAT_NUMPY)
            source.getTile(0, 0, source.levels - 1, numpyAllowed="always")
    except Exception as exc:
        # Any decoder failure means the slide cannot be processed; see _read_clipped.
        raise SlideReadError(path, f"pixel data cannot be decoded ({_describe(exc)}); the "
                                   "file is damaged or uses an unsupported compression") from exc


def _describe(exc: Exception) -> str:
    # Drop "<_io.BytesIO object at 0x...>" fragments that PIL puts in its messages.
    message = re.sub(r"\s*<[^>]* at 0x[0-9a-f]+>", "", str(exc)).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _build_info(path: Path, source: Any, metadata: dict[str, Any]) -> SlideInfo:
    width, height = int(metadata["sizeX"]), int(metadata["sizeY"])
    level0 = formats.read_tiff_level0(path)
    format_name, compression = _format_and_compression(path, source, level0)
    level_shapes = _native_level_shapes(path, source, level0, width, height)
    with quiet_third_party():
        associated = sorted(source.getAssociatedImagesList())
    mm_x, mm_y = metadata.get("mm_x"), metadata.get("mm_y")
    magnification = metadata.get("magnification")
    return SlideInfo(
        path=str(path),
        format=format_name,
        reader=str(source.name),
        width=width,
        height=height,
        level_count=len(level_shapes),
        level_downsamples=[round(width / level_width, 4) for level_width, _ in level_shapes],
        tile_width=int(metadata["tileWidth"]),
        tile_height=int(metadata["tileHeight"]),
        mpp_x=round(float(mm_x) * 1000.0, 6) if mm_x else None,
        mpp_y=round(float(mm_y) * 1000.0, 6) if mm_y else None,
        magnification=round(float(magnification), 4) if magnification else None,
        associated_images=associated,
        compression=compression,
        bands=level0.samples if level0 is not None else int(metadata.get("bandCount") or 3),
    )


def _format_and_compression(path: Path, source: Any,
                            level0: formats.TiffLevel0 | None) -> tuple[str, str]:
    if source.name == "pil":
        with quiet_third_party(), Image.open(path) as image:
            kind = (image.format or "image").lower()
        compression = {"png": "png", "jpeg": "jpeg", "webp": "webp"}.get(kind, "unknown")
        if level0 is not None:
            compression = level0.compression
        return kind, compression
    if formats.is_dicom(path):
        return "dicom", formats.dicom_compression(path)
    vendor_format = formats.openslide_format(path) if source.name == "openslide" else None
    if level0 is not None:
        return vendor_format or level0.kind, level0.compression
    return vendor_format or str(source.name), "unknown"


def _native_level_shapes(path: Path, source: Any, level0: formats.TiffLevel0 | None,
                         width: int, height: int) -> list[tuple[int, int]]:
    if source.name == "openslide":
        import openslide

        with openslide.OpenSlide(str(path)) as handle:
            return [(int(w), int(h)) for w, h in handle.level_dimensions]
    if level0 is not None and level0.level_shapes and level0.level_shapes[0] == (width, height):
        return level0.level_shapes
    # NOTE: other sources (PIL, DICOM through wsidicom) are reported as one level even
    # when the file set contains a pyramid. large-image still reads them at any downsample.
    return [(width, height)]
