"""Name a slide's container format and level-0 compression from its file."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import tifffile

from pipeline.io.quiet import quiet_third_party

logger = logging.getLogger(__name__)

# tifffile COMPRESSION names mapped to the short names used in SlideInfo.compression.
_TIFF_COMPRESSIONS = {
    "NONE": "none",
    "JPEG": "jpeg",
    "OJPEG": "jpeg",
    "APERIO_JP2000_YCBC": "jpeg2000",
    "APERIO_JP2000_RGB": "jpeg2000",
    "JPEG2000": "jpeg2000",
    "JPEG_2000_LOSSY": "jpeg2000",
    "ADOBE_DEFLATE": "deflate",
    "DEFLATE": "deflate",
    "LZW": "lzw",
    "ZSTD": "zstd",
    "LZMA": "lzma",
    "PACKBITS": "packbits",
    "WEBP": "webp",
    "JPEGXL": "jpegxl",
    "JPEGXR": "jpegxr",
    "PNG": "png",
}

# OpenSlide vendor names mapped to SlideInfo.format.
_OPENSLIDE_FORMATS = {
    "aperio": "aperio-svs",
    "hamamatsu": "hamamatsu-ndpi",
    "generic-tiff": "generic-tiff",
    "dicom": "dicom",
    "philips": "philips-tiff",
    "leica": "leica-scn",
    "mirax": "mirax",
    "ventana": "ventana-bif",
    "sakura": "sakura-svslide",
    "trestle": "trestle-tiff",
}

# DICOM transfer syntax UIDs mapped to a compression name.
_DICOM_COMPRESSIONS = {
    "1.2.840.10008.1.2": "none",
    "1.2.840.10008.1.2.1": "none",
    "1.2.840.10008.1.2.4.50": "jpeg",
    "1.2.840.10008.1.2.4.51": "jpeg",
    "1.2.840.10008.1.2.4.57": "jpeg-lossless",
    "1.2.840.10008.1.2.4.70": "jpeg-lossless",
    "1.2.840.10008.1.2.4.90": "jpeg2000-lossless",
    "1.2.840.10008.1.2.4.91": "jpeg2000",
    "1.2.840.10008.1.2.5": "rle",
}


@dataclass(frozen=True)
class TiffLevel0:
    """Description of the first TIFF page and pyramid, for orientation and byte copies."""

    width: int
    height: int
    orientation: int
    compression: str
    level_shapes: list[tuple[int, int]]
    kind: str
    samples: int


def is_tiff(path: Path) -> bool:
    """Return whether the file starts with a TIFF or BigTIFF header."""
    with path.open("rb") as handle:
        head = handle.read(4)
    return head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def is_dicom(path: Path) -> bool:
    """Return whether the file has the DICOM Part 10 preamble marker."""
    with path.open("rb") as handle:
        handle.seek(128)
        return handle.read(4) == b"DICM"


def read_tiff_level0(path: Path) -> TiffLevel0 | None:
    """Describe the first page and pyramid of a TIFF file, or None if it is not a TIFF."""
    if not is_tiff(path):
        return None
    try:
        with quiet_third_party(), tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            orientation_tag = page.tags.get(274)
            orientation = int(orientation_tag.value) if orientation_tag else 1
            name = getattr(page.compression, "name", str(page.compression))
            series = tif.series[0]
            shapes = []
            for level in series.levels:
                height, width = _yx(level.shape, level.axes)
                if orientation in (5, 6, 7, 8):
                    width, height = height, width
                shapes.append((width, height))
            kind = _tiff_kind(tif)
            return TiffLevel0(width=int(page.imagewidth), height=int(page.imagelength),
                              orientation=orientation,
                              compression=_TIFF_COMPRESSIONS.get(name, name.lower()),
                              level_shapes=shapes, kind=kind,
                              samples=int(page.samplesperpixel))
    except (tifffile.TiffFileError, OSError, ValueError, IndexError, KeyError) as exc:
        logger.debug("tifffile could not describe %s: %s", path, exc)
        return None


def _yx(shape: tuple[int, ...], axes: str) -> tuple[int, int]:
    return int(shape[axes.index("Y")]), int(shape[axes.index("X")])


def _tiff_kind(tif: tifffile.TiffFile) -> str:
    if tif.is_ome:
        return "ome-tiff"
    if tif.is_svs:
        return "aperio-svs"
    if tif.is_ndpi:
        return "hamamatsu-ndpi"
    if tif.is_qpi:
        return "qptiff"
    if tif.is_philips:
        return "philips-tiff"
    return "generic-tiff"


def openslide_format(path: Path) -> str | None:
    """Return the OpenSlide vendor of a file mapped to a format name, or None."""
    import openslide

    try:
        vendor = openslide.OpenSlide.detect_format(str(path))
    except openslide.OpenSlideError:
        return None
    if vendor is None:
        return None
    return _OPENSLIDE_FORMATS.get(vendor, vendor)


def dicom_compression(path: Path) -> str:
    """Return the compression name of a DICOM file's transfer syntax."""
    import pydicom

    with quiet_third_party():
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
    uid = str(dataset.file_meta.TransferSyntaxUID)
    return _DICOM_COMPRESSIONS.get(uid, uid)
