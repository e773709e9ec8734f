"""Output files of a run: names, the staging folder, pyramid specs, checksums and the input record.

``run_pipeline`` and ``revise_output`` write the same three files the same way: into a
private folder inside the output folder, renamed into place only when everything is
written, with the input's SHA-256 compared before and after.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.errors import InkRemovalError
from pipeline.geometry import Box, TileGrid
from pipeline.io.info import SlideInfo
from pipeline.io.jpeg_tiles import JpegTileCopier
from pipeline.io.writer import EncodedTile, Level0Tile, PyramidSpec
from pipeline.report import sha256_file
from pipeline.version import __version__

logger = logging.getLogger(__name__)

RESTORED_NAME = "restored.tiff"
MASK_NAME = "ink-mask.tiff"
REPORT_NAME = "report.json"
OUTPUT_NAMES = (RESTORED_NAME, MASK_NAME, REPORT_NAME)

UnchangedMode = Literal["byte-identical", "pixel-identical", "re-encoded"]
Compression = Literal["jpeg", "deflate", "lzw", "zstd"]


def check_output_dir(slide_path: Path, output_dir: Path) -> None:
    """Raise InkRemovalError when writing the outputs would replace ``slide_path``."""
    for name in OUTPUT_NAMES:
        if (output_dir / name).resolve() == slide_path:
            raise InkRemovalError(f"output {output_dir / name} would overwrite the input slide; "
                                  "choose another output folder")


@contextlib.contextmanager
def staged_outputs(output_dir: Path) -> Iterator[Path]:
    """Yield a new private folder inside ``output_dir`` to write the three outputs into.

    When the block finishes, the outputs are renamed into ``output_dir``. When it raises
    (RunCancelled included), nothing is renamed. The private folder is removed in both cases.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".inkweb-run-", dir=output_dir))
    try:
        yield staging
        for name in OUTPUT_NAMES:
            os.replace(staging / name, output_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def open_jpeg_copier(path: Path, info: SlideInfo, *,
                     enabled: bool) -> tuple[JpegTileCopier | None, str]:
    """Return a copier of the level-0 JPEG tiles of ``path``, or (None, why there is none)."""
    if not enabled:
        return None, "copying unchanged tiles is turned off"
    if info.compression != "jpeg":
        return None, f"level 0 is {info.compression}-compressed, not JPEG"
    copier, reason = JpegTileCopier.open(path, info)
    if copier is not None and reason:
        copier.close()
        copier = None
    if copier is None:
        logger.warning("%s: unchanged tiles will be re-encoded: %s", path, reason)
    return copier, reason


def unchanged_mode(copier: JpegTileCopier | None, *, lossy: bool) -> UnchangedMode:
    """Return how exactly unchanged tiles are kept: copied bytes, lossless, or re-encoded."""
    if copier is not None:
        return "byte-identical"
    if not lossy:
        return "pixel-identical"
    return "re-encoded"


def replacement_tile(copier: JpegTileCopier | None, index: int, box: Box,
                     pixels: np.ndarray) -> Level0Tile:
    """Return the level-0 tile to write for changed ``pixels`` (box.height, box.width, 3).

    With a copier, the full tile is encoded with the copier's tables, and the part beyond
    the image edge keeps the stored tile's padding.
    """
    if copier is None:
        return pixels
    full = copier.decode(copier.raw_tile(index)).copy()
    full[:box.height, :box.width] = pixels
    return EncodedTile(data=copier.encode(full), pixels=full)


def restored_spec(info: SlideInfo, grid: TileGrid, *, compression: Compression,
                  jpeg_quality: int, copier: JpegTileCopier | None,
                  source_name: str) -> PyramidSpec:
    """Return the pyramid spec of restored.tiff; a copier fixes the level-0 JPEG layout."""
    return PyramidSpec(
        width=info.width, height=info.height, tile_width=grid.tile_width,
        tile_height=grid.tile_height, samples=3, compression=compression,
        jpeg_quality=jpeg_quality, mpp=_mpp(info), reduction="mean",
        jpeg_copy=copier.layout if copier is not None else None,
        description=f"InkWeb restored slide from {source_name}",
        software=f"inkweb {__version__}")


def mask_spec(info: SlideInfo, grid: TileGrid, *, source_name: str) -> PyramidSpec:
    """Return the spec of ink-mask.tiff: one deflate band; lower levels keep any ink pixel."""
    return PyramidSpec(
        width=info.width, height=info.height, tile_width=grid.tile_width,
        tile_height=grid.tile_height, samples=1, compression="deflate", mpp=_mpp(info),
        reduction="max", description=f"InkWeb ink mask of {source_name}",
        software=f"inkweb {__version__}")


def verify_input_unchanged(slide_path: Path, sha_before: str) -> str:
    """Return the input's SHA-256 now; raise InkRemovalError when it differs from ``sha_before``."""
    sha_after = sha256_file(slide_path)
    if sha_after != sha_before:
        raise InkRemovalError(f"input {slide_path} changed during the run "
                              f"(SHA-256 {sha_before} before, {sha_after} after); "
                              "outputs were discarded, run again on a stable copy")
    return sha_after


def output_checksums(staging: Path) -> dict[str, dict[str, str]]:
    """Return the final path and SHA-256 of restored.tiff and ink-mask.tiff in ``staging``."""
    return {key: {"path": str(staging.parent / name), "sha256": sha256_file(staging / name)}
            for key, name in (("restored", RESTORED_NAME), ("ink_mask", MASK_NAME))}


def input_record(info: SlideInfo, slide_path: Path, *, sha_before: str,
                 sha_after: str) -> dict[str, Any]:
    """Return the report's "input" entry: the slide's path, format, size and checksums."""
    return {
        "path": str(slide_path), "format": info.format, "reader": info.reader,
        "width": info.width, "height": info.height, "mpp_x": info.mpp_x,
        "mpp_y": info.mpp_y, "compression": info.compression,
        "sha256_before": sha_before, "sha256_after": sha_after,
    }


def _mpp(info: SlideInfo) -> tuple[float, float] | None:
    if info.mpp_x and info.mpp_y:
        return (info.mpp_x, info.mpp_y)
    return None
