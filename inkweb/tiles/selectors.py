"""Reads of tiles and tile metadata, with tile bytes cached in Redis.

A tile's cache key and ETag contain the slide id, the kind, the run id and the checksum
of the file it is cut from, so the tiles of a new run never collide with older ones.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from django.conf import settings
from django.core.cache import caches
from django.urls import reverse
from redis.exceptions import RedisError

from inkweb.core.exceptions import NotFoundError, UpstreamReadError
from inkweb.core.storage import storage_absolute
from inkweb.runs.models import PipelineRun
from inkweb.runs.selectors import run_latest_succeeded
from inkweb.slides.models import Slide
from inkweb.tiles.encoding import CONTENT_TYPES, encode_mask_tile, encode_tile
from inkweb.tiles.sources import TileReader, tile_reader_open

logger = logging.getLogger(__name__)

TileKind = Literal["original", "restored", "mask"]
TILE_KINDS: tuple[TileKind, ...] = ("original", "restored", "mask")
CACHE_VERSION = "1"

_last_cache_warning = 0.0


@dataclass(frozen=True)
class TileSourceRef:
    """The file behind one kind of tiles of a slide, and what identifies its content."""

    slide_id: int
    kind: TileKind
    run_id: int | None
    path: Path
    content_token: str
    expected_size: tuple[int, int] | None
    mpp: tuple[float | None, float | None]


@dataclass(frozen=True)
class EncodedTile:
    """Encoded tile bytes with their HTTP content type and ETag."""

    content: bytes
    content_type: str
    etag: str


def _warn_cache_unavailable(error: Exception) -> None:
    # Redis outages would otherwise log once per tile; one line a minute is enough.
    global _last_cache_warning
    now = time.monotonic()
    if now - _last_cache_warning > 60:
        _last_cache_warning = now
        logger.warning("Tile cache unavailable, serving tiles uncached: %s", error)


def tile_source_resolve(
    *, slide_id: int, kind: TileKind, run_id: int | None = None
) -> TileSourceRef:
    """Return the file behind `kind` tiles of a slide.

    restored and mask tiles come from run `run_id`, or from the slide's newest succeeded
    run when it is None. Raises NotFoundError when there is nothing to show.
    """
    slide = (
        Slide.objects.filter(pk=slide_id)
        .only("id", "original_path", "sha256", "width", "height", "mpp_x", "mpp_y", "ingest_status")
        .first()
    )
    if slide is None:
        raise NotFoundError(f"Slide {slide_id} does not exist.", code="slide_not_found")
    if slide.ingest_status != Slide.IngestStatus.READY:
        raise NotFoundError(
            f"Slide {slide_id} is not ingested (status {slide.ingest_status}); it has no tiles.",
            code="slide_not_ready",
        )
    mpp = (slide.mpp_x, slide.mpp_y)
    expected = (slide.width, slide.height) if slide.width and slide.height else None

    if kind == "original":
        return TileSourceRef(
            slide_id=slide.pk,
            kind=kind,
            run_id=None,
            path=storage_absolute(slide.original_path),
            content_token=slide.sha256,
            expected_size=expected,
            mpp=mpp,
        )

    if run_id is None:
        run = run_latest_succeeded(slide_id=slide.pk)
    else:
        run = PipelineRun.objects.filter(pk=run_id, slide_id=slide.pk).first()
    if run is None or run.status != PipelineRun.Status.SUCCEEDED:
        source_run = f"run {run_id}" if run_id is not None else "any run"
        raise NotFoundError(
            f"Slide {slide_id} has no {kind} image from {source_run}; run ink removal first.",
            code="no_output",
        )
    relative = run.restored_path if kind == "restored" else run.mask_path
    token = run.restored_sha256 if kind == "restored" else run.mask_sha256
    return TileSourceRef(
        slide_id=slide.pk,
        kind=kind,
        run_id=run.pk,
        path=storage_absolute(relative),
        content_token=token or f"run-{run.pk}",
        expected_size=None,
        mpp=mpp,
    )


def _reader(ref: TileSourceRef) -> TileReader:
    try:
        return tile_reader_open(
            path=ref.path, token=ref.content_token, expected_size=ref.expected_size
        )
    except Exception as error:  # any reader library error on a stored file is a read failure
        logger.exception(
            "Opening %s tiles of slide %s (run %s) failed", ref.kind, ref.slide_id, ref.run_id
        )
        raise UpstreamReadError(
            f"The {ref.kind} image of slide {ref.slide_id} could not be opened: {error}",
            code="tile_source_unreadable",
        ) from error


def tile_format(*, kind: TileKind, requested: str) -> str:
    """Return the canonical format ("jpeg" or "png"); mask tiles are PNG only."""
    fmt = "jpeg" if requested in {"jpg", "jpeg"} else requested
    if kind == "mask" and fmt != "png":
        raise NotFoundError("Mask tiles are served as PNG only; request .png.", code="tile_format")
    return fmt


def tile_info_get(*, ref: TileSourceRef) -> dict[str, Any]:
    """Return the pyramid metadata of a tile source and the URL template of its tiles."""
    reader = _reader(ref)
    geometry = reader.geometry
    fmt = "png" if ref.kind == "mask" else "jpeg"
    template = reverse(
        "api-tile",
        kwargs={"slide_id": ref.slide_id, "kind": ref.kind, "z": 0, "x": 0, "y": 0, "fmt": fmt},
    ).replace("/0/0/0.", "/{z}/{x}/{y}.")
    if ref.run_id is not None:
        template += f"?run={ref.run_id}"
    mm_x = reader.mm_x or (ref.mpp[0] / 1000 if ref.mpp[0] else None)
    mm_y = reader.mm_y or (ref.mpp[1] / 1000 if ref.mpp[1] else None)
    return {
        "kind": ref.kind,
        "run_id": ref.run_id,
        "sizeX": geometry.size_x,
        "sizeY": geometry.size_y,
        "tileWidth": geometry.tile_width,
        "tileHeight": geometry.tile_height,
        "levels": geometry.levels,
        "mm_x": mm_x,
        "mm_y": mm_y,
        "format": fmt,
        "tile_url_template": template,
    }


def tile_cache_key(*, ref: TileSourceRef, z: int, x: int, y: int, fmt: str) -> str:
    """Return the Redis key of one encoded tile."""
    return (
        f"v{CACHE_VERSION}:{ref.slide_id}:{ref.kind}:{ref.run_id or 0}:"
        f"{ref.content_token[:16]}:{z}:{x}:{y}:{fmt}"
    )


def tile_etag(*, ref: TileSourceRef, z: int, x: int, y: int, fmt: str) -> str:
    """Return the strong ETag of a tile; equal keys always encode to equal bytes."""
    key = tile_cache_key(ref=ref, z=z, x=x, y=y, fmt=fmt)
    return '"' + hashlib.blake2b(key.encode(), digest_size=16).hexdigest() + '"'


def tile_get(*, ref: TileSourceRef, z: int, x: int, y: int, fmt: str) -> EncodedTile:
    """Return one encoded tile from the Redis cache, or read, encode and cache it.

    Raises NotFoundError outside the pyramid and UpstreamReadError when decoding fails.
    """
    etag = tile_etag(ref=ref, z=z, x=x, y=y, fmt=fmt)
    content_type = CONTENT_TYPES[fmt]
    key = tile_cache_key(ref=ref, z=z, x=x, y=y, fmt=fmt)
    cache = caches["tiles"]

    try:
        cached = cache.get(key)
    except RedisError as error:
        _warn_cache_unavailable(error)
        cached = None
    if cached is not None:
        return EncodedTile(content=cached, content_type=content_type, etag=etag)

    reader = _reader(ref)
    if not reader.geometry.contains(z, x, y):
        columns, rows = (
            (0, 0) if not 0 <= z < reader.geometry.levels else reader.geometry.tile_count(z)
        )
        raise NotFoundError(
            f"Tile z={z} x={x} y={y} is outside the {ref.kind} pyramid of slide {ref.slide_id} "
            f"(levels 0-{reader.geometry.levels - 1}; {columns}x{rows} tiles at this level).",
            code="tile_not_found",
        )

    try:
        tile = reader.read_tile(z=z, x=x, y=y)
        content = encode_mask_tile(tile) if ref.kind == "mask" else encode_tile(tile, fmt=fmt)
    except Exception as error:  # decoder errors of any format must not take the server down
        logger.exception(
            "Reading %s tile z=%s x=%s y=%s of slide %s (run %s) failed",
            ref.kind,
            z,
            x,
            y,
            ref.slide_id,
            ref.run_id,
        )
        raise UpstreamReadError(
            f"Tile z={z} x={x} y={y} of the {ref.kind} image of slide {ref.slide_id} "
            f"could not be decoded: {error}",
            code="tile_read_failed",
        ) from error

    try:
        cache.set(key, content, timeout=settings.INKWEB_TILE_CACHE_SECONDS)
    except RedisError as error:
        _warn_cache_unavailable(error)
    return EncodedTile(content=content, content_type=content_type, etag=etag)
