"""Level-0 tiles of a tiled TIFF, stored and decoded, for rewriting an earlier output."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import tifffile

from pipeline.errors import SlideReadError
from pipeline.io.quiet import quiet_third_party

StoredCompression = Literal["jpeg", "deflate", "lzw", "zstd"]
# TIFF Compression tag values of the codecs that PyramidSpec writes.
_COMPRESSION_NAMES: dict[int, StoredCompression] = {5: "lzw", 7: "jpeg", 8: "deflate",
                                                    32946: "deflate", 50000: "zstd"}


class StoredTiles:
    """Reads the first page of a tiled TIFF (level 0 of a pyramid) one tile at a time.

    Tiles are numbered row by row, as TileGrid numbers them. Decoded tiles are full
    (tile_height, tile_width, samples) uint8 arrays, padding beyond the image edge included.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._tif = tifffile.TiffFile(path)
        except (tifffile.TiffFileError, OSError) as exc:
            raise SlideReadError(path, f"not a readable TIFF file ({exc})") from exc
        page: Any = self._tif.pages.first
        if not page.is_tiled or page.bitspersample != 8 or page.planarconfig != 1:
            self._tif.close()
            raise SlideReadError(path, "level 0 is not tiled 8-bit interleaved data")
        self._page = page
        self.width = int(page.imagewidth)
        self.height = int(page.imagelength)
        self.tile_width = int(page.tilewidth)
        self.tile_height = int(page.tilelength)
        self.samples = int(page.samplesperpixel)
        # None for a codec that PyramidSpec does not write (uncompressed data included).
        self.compression: StoredCompression | None = _COMPRESSION_NAMES.get(
            int(page.compression))

    def __enter__(self) -> StoredTiles:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def raw_tile(self, index: int) -> bytes:
        """Return tile ``index`` exactly as stored."""
        handle = self._tif.filehandle
        handle.seek(self._page.dataoffsets[index])
        return bytes(handle.read(self._page.databytecounts[index]))

    def tile(self, index: int) -> np.ndarray:
        """Decode tile ``index`` to (tile_height, tile_width, samples) uint8."""
        with quiet_third_party():
            segment, _, _ = self._page.decode(self.raw_tile(index), index,
                                              jpegtables=self._page.jpegtables)
        if segment is None:
            raise SlideReadError(self.path, f"level-0 tile {index} has no data")
        return np.asarray(segment, dtype=np.uint8).reshape(self.tile_height, self.tile_width,
                                                           self.samples)

    def close(self) -> None:
        """Close the file."""
        self._tif.close()
