"""Verbatim access to a TIFF's level-0 JPEG tiles, and an encoder that matches them.

Copying the compressed bytes of tiles the pipeline did not change keeps their decoded
pixels identical to the source. Changed tiles are re-encoded with the source's own
quantisation and Huffman tables: libtiff keeps the tables of the last decoded tile, so
a tile carrying different tables would corrupt the tiles decoded after it.
"""

from __future__ import annotations

import io
import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile

from pipeline.io.info import SlideInfo
from pipeline.io.quiet import quiet_third_party

logger = logging.getLogger(__name__)

_PHOTOMETRIC_RGB = 2
_PHOTOMETRIC_YCBCR = 6
_COMPRESSION_JPEG = 7
# JPEG markers: start of image, end of image, start of scan, quantisation and Huffman tables.
_SOI, _EOI, _SOS, _DQT, _DHT = 0xFFD8, 0xFFD9, 0xFFDA, 0xFFDB, 0xFFC4
_SOF_MARKERS = frozenset({0xFFC0, 0xFFC1, 0xFFC2})
# Largest mean absolute difference (0..255 levels) between a tile and its re-encoding
# that still shows the encoder and the source use the same colour space.
_MAX_ROUND_TRIP_ERROR = 12.0


@dataclass(frozen=True)
class JpegLayout:
    """Level-0 storage layout of the source, needed to write its tiles back."""

    tile_width: int
    tile_height: int
    photometric: str  # "rgb" or "ycbcr", from the PhotometricInterpretation tag
    subsampling: tuple[int, int]
    jpegtables: bytes | None


class JpegTileCopier:
    """Reads the stored level-0 JPEG tiles of a TIFF and encodes replacements for them."""

    def __init__(self, path: Path, tif: tifffile.TiffFile, page: Any, layout: JpegLayout,
                 qtables: dict[int, list[int]]) -> None:
        self.path = path
        self.layout = layout
        self._tif = tif
        self._page = page
        self._qtables = qtables
        self._decode = page.decode

    @classmethod
    def open(cls, path: Path, info: SlideInfo) -> tuple[JpegTileCopier | None, str]:
        """Return a copier for ``path``, or (None, reason) when its tiles cannot be copied."""
        try:
            tif = tifffile.TiffFile(path)
        except (tifffile.TiffFileError, OSError) as exc:
            return None, f"not a TIFF file ({exc})"
        try:
            copier, reason = cls._open(path, tif, info)
        except (ValueError, OSError, KeyError, IndexError, struct.error) as exc:
            copier, reason = None, f"tiles could not be inspected ({exc})"
        if copier is None:
            tif.close()
        return copier, reason

    @classmethod
    def _open(cls, path: Path, tif: tifffile.TiffFile,
              info: SlideInfo) -> tuple[JpegTileCopier | None, str]:
        page = tif.pages.first
        orientation_tag = page.tags.get(274)
        checks = [
            (page.compression == _COMPRESSION_JPEG, "level 0 is not JPEG-compressed"),
            (page.is_tiled, "level 0 is not tiled"),
            (orientation_tag is None or int(orientation_tag.value) == 1,
             "level 0 has a non-default Orientation tag"),
            ((page.imagewidth, page.imagelength) == (info.width, info.height),
             "the first TIFF page is not the level-0 image"),
            (page.photometric in (_PHOTOMETRIC_RGB, _PHOTOMETRIC_YCBCR),
             "level 0 is not RGB or YCbCr"),
            (page.samplesperpixel == 3 and page.bitspersample == 8,
             "level 0 is not 8-bit with 3 samples"),
            (page.planarconfig == 1, "level 0 stores colour planes separately"),
            (page.tilewidth % 16 == 0 and page.tilelength % 16 == 0,
             f"tile size {page.tilewidth}x{page.tilelength} is not a multiple of 16"),
        ]
        for passed, reason in checks:
            if not passed:
                return None, reason

        first_tile = _read_bytes(tif, page, 0)
        tables = bytes(page.jpegtables) if page.jpegtables is not None else None
        sampling = _sampling_factors(first_tile)
        photometric = "rgb" if page.photometric == _PHOTOMETRIC_RGB else "ycbcr"
        layout = JpegLayout(tile_width=int(page.tilewidth), tile_height=int(page.tilelength),
                            photometric=photometric, subsampling=sampling, jpegtables=tables)
        with quiet_third_party(), Image.open(io.BytesIO(_full_stream(tables, first_tile))) as image:
            if not isinstance(image, JpegImageFile):
                return None, "level-0 tiles are not baseline JPEG streams"
            qtables = {int(key): list(value) for key, value in image.quantization.items()}
        copier = cls(path, tif, page, layout, qtables)
        return copier, copier._check_round_trip(first_tile)

    def _check_round_trip(self, first_tile: bytes) -> str:
        reference = self.decode(first_tile)
        encoded = self.encode(reference)
        if self.layout.jpegtables is not None:
            source_tables = _table_segments(self.layout.jpegtables)
            for key, table in _table_segments(encoded).items():
                if source_tables.get(key) != table:
                    return f"source JPEG table {key} cannot be reproduced by the encoder"
        error = float(np.abs(self.decode(encoded).astype(np.float32) - reference).mean())
        if error > _MAX_ROUND_TRIP_ERROR:
            return f"re-encoded tiles decode with a colour error of {error:.1f} levels"
        return ""

    def raw_tile(self, index: int) -> bytes:
        """Return tile ``index`` (row-major) exactly as stored."""
        return _read_bytes(self._tif, self._page, index)

    def decode(self, data: bytes) -> np.ndarray:
        """Decode one stored or encoded tile to (tile_height, tile_width, 3) uint8 RGB."""
        with quiet_third_party():
            segment, _, _ = self._decode(data, 0, jpegtables=self.layout.jpegtables)
        return np.asarray(segment).reshape(self.layout.tile_height, self.layout.tile_width, 3)

    def encode(self, pixels: np.ndarray) -> bytes:
        """Encode a full (tile_height, tile_width, 3) RGB tile with the source's tables."""
        subsampling = {(1, 1): 0, (2, 1): 1, (2, 2): 2}[self.layout.subsampling]
        buffer = io.BytesIO()
        Image.fromarray(pixels, mode="RGB").save(
            buffer, format="JPEG", qtables=self._qtables, subsampling=subsampling,
            keep_rgb=self.layout.photometric == "rgb", optimize=False)
        return buffer.getvalue()

    def close(self) -> None:
        """Close the source file."""
        self._tif.close()


def _read_bytes(tif: tifffile.TiffFile, page: Any, index: int) -> bytes:
    handle = tif.filehandle
    handle.seek(page.dataoffsets[index])
    return bytes(handle.read(page.databytecounts[index]))


def _full_stream(tables: bytes | None, tile: bytes) -> bytes:
    """Join a tables-only stream and an abbreviated tile into one decodable JPEG."""
    if tables is None:
        return tile
    return tables[:-2] + tile[2:]  # drop the tables' EOI and the tile's SOI


def _segments(data: bytes) -> list[tuple[int, bytes]]:
    """Split a JPEG stream into (marker, payload) pairs up to the start of scan."""
    segments = []
    position = 2 if data[:2] == b"\xff\xd8" else 0
    while position + 4 <= len(data):
        marker, length = struct.unpack(">HH", data[position:position + 4])
        if marker in (_SOS, _EOI):
            break
        segments.append((marker, data[position + 4:position + 2 + length]))
        position += 2 + length
    return segments


def _table_segments(data: bytes) -> dict[tuple[str, int], bytes]:
    """Return every quantisation and Huffman table of a stream keyed by (kind, id)."""
    tables: dict[tuple[str, int], bytes] = {}
    for marker, payload in _segments(data):
        position = 0
        if marker == _DQT:
            while position < len(payload):
                precision, table_id = payload[position] >> 4, payload[position] & 0x0F
                size = 1 + 64 * (2 if precision else 1)
                tables[("dqt", table_id)] = payload[position:position + size]
                position += size
        elif marker == _DHT:
            while position < len(payload):
                table_class, table_id = payload[position] >> 4, payload[position] & 0x0F
                count = sum(payload[position + 1:position + 17])
                size = 17 + count
                tables[(f"dht{table_class}", table_id)] = payload[position:position + size]
                position += size
    return tables


def _sampling_factors(tile: bytes) -> tuple[int, int]:
    """Return the (horizontal, vertical) sampling of the first component of a tile."""
    for marker, payload in _segments(tile):
        if marker in _SOF_MARKERS:
            # payload: precision, height, width, component count, then (id, HV, table) triples.
            factors = payload[7]
            horizontal, vertical = factors >> 4, factors & 0x0F
            if (horizontal, vertical) not in ((1, 1), (2, 1), (2, 2)):
                raise ValueError(f"unsupported JPEG sampling {horizontal}x{vertical}")
            return horizontal, vertical
    raise ValueError("tile has no JPEG frame header")
