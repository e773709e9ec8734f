"""De-identified export of a restored pyramid, and the read-back check that proves it.

``export_slide`` rewrites a restored pyramid as a generic tiled BigTIFF that carries
pixels, geometry and resolution only. Every level is tiled and the reduced levels are
flagged NewSubfileType 1, the layout that OpenSlide opens as "generic-tiff". No
ImageDescription, Software, DateTime or other text tag is written, no label, macro or
thumbnail image, and the file is named by the caller's identifier. Magnification has
no standard TIFF tag, so it is not written; resolution stays in XResolution/YResolution.

``verify_deidentified`` reads a file back with tifffile and OpenSlide and raises
DeidentificationError naming every tag, page or text that should not be there.
"""

from __future__ import annotations

import logging
import os
import re
import struct
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import tifffile

from pipeline.errors import InkRemovalError
from pipeline.geometry import TileGrid
from pipeline.io.info import SlideInfo
from pipeline.io.jpeg_tiles import JpegTileCopier
from pipeline.io.quiet import quiet_third_party
from pipeline.io.slide import Slide, open_slide
from pipeline.io.writer import CopiedTile, Level0Tile, PyramidSpec, write_pyramid
from pipeline.progress import ProgressCallback, ProgressEvent, ProgressReporter
from pipeline.report import sha256_file

logger = logging.getLogger(__name__)

# The only TIFF tags an exported page may carry: geometry, encoding and resolution.
ALLOWED_TAGS: dict[int, str] = {
    254: "NewSubfileType",
    256: "ImageWidth",
    257: "ImageLength",
    258: "BitsPerSample",
    259: "Compression",
    262: "PhotometricInterpretation",
    277: "SamplesPerPixel",
    282: "XResolution",
    283: "YResolution",
    284: "PlanarConfiguration",
    296: "ResolutionUnit",
    317: "Predictor",
    322: "TileWidth",
    323: "TileLength",
    324: "TileOffsets",
    325: "TileByteCounts",
    338: "ExtraSamples",
    339: "SampleFormat",
    347: "JPEGTables",
    529: "YCbCrCoefficients",
    530: "YCbCrSubSampling",
    531: "YCbCrPositioning",
    532: "ReferenceBlackWhite",
}

# Metadata and images left out of every export, whatever the source contains; manifests
# list them.
DEIDENTIFICATION_POLICY: tuple[str, ...] = (
    "original file name: each file is named by its dataset identifier",
    "label, macro and thumbnail (associated) images",
    "ImageDescription, Software, DateTime, Artist, HostComputer, Make, Model, "
    "DocumentName, PageName, Copyright and every other TIFF tag outside the kept list",
    "EXIF, GPS, XMP, IPTC and ICC metadata blocks and SubIFDs",
    "comment (COM) and application (APP1-APP13, APP15) segments of JPEG tiles",
    "objective magnification (no standard TIFF tag; the manifest records it)",
)

EXPORT_STAGE_WEIGHTS: dict[str, float] = {"export": 0.85, "verify": 0.15}

# Tile edges tifffile accepts must be multiples of 16; other sources use this size.
_DEFAULT_TILE = 512
_MAX_TILE = 4096
# Bytes of a file read at once when searching it for forbidden text.
_SEARCH_CHUNK = 8 << 20
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

# JPEG markers (ITU T.81): start and end of image, start of scan, comment.
_SOI, _EOI, _SOS, _COM = 0xFFD8, 0xFFD9, 0xFFDA, 0xFFFE
_APP0, _APP14, _APP15 = 0xFFE0, 0xFFEE, 0xFFEF

Level0Mode = Literal["copied", "lossless", "re-encoded"]


class ExportError(InkRemovalError):
    """An export could not be written."""


class ExportCancelled(ExportError):
    """A progress callback asked the export to stop; the partial file was removed."""


class DeidentificationError(ExportError):
    """A file carries metadata, pages or text that a de-identified export must not have."""

    def __init__(self, path: str | Path, problems: Sequence[str]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        super().__init__(f"{Path(path).name} is not de-identified: {'; '.join(self.problems)}")

    def __reduce__(self) -> tuple[type[DeidentificationError], tuple[str, list[str]]]:
        return (type(self), (self.path, self.problems))


@dataclass(frozen=True)
class ExportResult:
    """One exported file: its checksum, geometry and what de-identification did."""

    path: Path
    identifier: str
    sha256: str
    size_bytes: int
    width: int
    height: int
    mpp_x: float | None
    mpp_y: float | None
    levels: list[tuple[int, int]]
    # Relation of level-0 pixels to the source: tiles copied byte for byte, re-encoded
    # without loss, or re-encoded as JPEG (only when the source's tiles cannot be copied).
    level0: Level0Mode
    removed: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


def export_fraction(event: ProgressEvent) -> float:
    """Return the share of one slide's export that ``event`` marks as done, 0..1."""
    before = 0.0
    for stage, weight in EXPORT_STAGE_WEIGHTS.items():
        if stage == event.stage:
            within = min(1.0, event.done / event.total) if event.total > 0 else 1.0
            return min(1.0, before + weight * within)
        before += weight
    return 0.0


def export_slide(restored_path: str | Path, out_path: str | Path, *, identifier: str,
                 forbidden_text: Sequence[str] = (),
                 progress: ProgressCallback | None = None) -> ExportResult:
    """Write ``restored_path`` to ``out_path`` as a de-identified tiled BigTIFF.

    ``out_path`` must be named ``<identifier>.tiff``. ``forbidden_text`` lists strings
    (such as the original file name) that must not occur anywhere in the written bytes.
    The file is verified with ``verify_deidentified`` before it is renamed into place,
    so a file that fails the check is never left at ``out_path``. Raising from
    ``progress`` stops the export and removes the partial file.
    """
    restored_path, out_path = Path(restored_path).resolve(), Path(out_path).resolve()
    _check_names(restored_path, out_path, identifier)
    reporter = ProgressReporter(progress)
    unverified = out_path.with_name(f".{out_path.stem}.unverified.tiff")
    logger.info("export started: %s -> %s", restored_path, out_path)
    try:
        removed = describe_removed(restored_path)
        with open_slide(restored_path) as slide:
            plan = _plan(slide, restored_path, reporter)
            try:
                levels = write_pyramid(unverified, plan.spec, plan.tiles,
                                       workdir=out_path.parent)
            finally:
                plan.close()
        if plan.stripped[0]:
            removed.append(f"{plan.stripped[0]} comment or application segments of JPEG tiles")
        reporter.emit("verify", 0, 1, "reading the file back")
        checks = verify_deidentified(unverified, forbidden_text=forbidden_text)
        reporter.emit("verify", 1, 1, "verified")
        os.replace(unverified, out_path)
    finally:
        unverified.unlink(missing_ok=True)
    spec = plan.spec
    result = ExportResult(
        path=out_path, identifier=identifier, sha256=sha256_file(out_path),
        size_bytes=out_path.stat().st_size, width=spec.width, height=spec.height,
        mpp_x=spec.mpp[0] if spec.mpp else None, mpp_y=spec.mpp[1] if spec.mpp else None,
        levels=levels, level0=plan.mode, removed=removed, checks=checks)
    logger.info("export finished: %s, %d bytes, level 0 %s", out_path, result.size_bytes,
                plan.mode)
    return result


def _check_names(restored_path: Path, out_path: Path, identifier: str) -> None:
    if not _IDENTIFIER.match(identifier):
        raise ValueError(f"identifier {identifier!r} must be 1-100 letters, digits, '.', '_' "
                         "or '-', starting with a letter or digit")
    if out_path.name not in (f"{identifier}.tiff", f"{identifier}.tif"):
        raise ValueError(f"output {out_path.name!r} must be named {identifier}.tiff")
    if out_path == restored_path:
        raise ValueError(f"output {out_path} would overwrite the restored pyramid")
    if not restored_path.is_file():
        raise ExportError(f"restored pyramid not found: {restored_path}")


@dataclass
class _Plan:
    """Output encoding and level-0 tile stream of one export."""

    spec: PyramidSpec
    mode: Level0Mode
    tiles: Iterator[Level0Tile]
    close: Callable[[], None] = lambda: None
    # Text segments removed from copied JPEG tiles and tables (a list, updated while streaming).
    stripped: list[int] = field(default_factory=lambda: [0])


def _plan(slide: Slide, path: Path, reporter: ProgressReporter) -> _Plan:
    """Choose the output encoding: copied JPEG tiles when possible, else decoded pixels."""
    info = slide.info
    mpp = (info.mpp_x, info.mpp_y) if info.mpp_x and info.mpp_y else None
    if info.compression == "jpeg":
        copier, reason = JpegTileCopier.open(path, info)
        if copier is not None:
            # Copying needs no re-encoding, so a failed encoder round trip does not matter.
            return _copy_plan(copier, info, mpp, reporter)
        logger.warning("%s: level-0 JPEG tiles cannot be copied (%s); re-encoding them at "
                       "quality 90 changes their pixels slightly", path, reason)
    tile_width, tile_height = _tile_size(info)
    lossy = info.compression == "jpeg"
    spec = PyramidSpec(width=info.width, height=info.height, tile_width=tile_width,
                       tile_height=tile_height, compression="jpeg" if lossy else "deflate",
                       jpeg_quality=90, mpp=mpp, deidentified=True)
    grid = TileGrid(info.width, info.height, tile_width, tile_height)
    return _Plan(spec=spec, mode="re-encoded" if lossy else "lossless",
                 tiles=_read_tiles(slide, grid, reporter))


def _tile_size(info: SlideInfo) -> tuple[int, int]:
    width, height = info.tile_width, info.tile_height
    if width % 16 or height % 16 or not 16 <= max(width, height) <= _MAX_TILE:
        return _DEFAULT_TILE, _DEFAULT_TILE
    return width, height


def _read_tiles(slide: Slide, grid: TileGrid, reporter: ProgressReporter) -> Iterator[Level0Tile]:
    total = len(grid)
    reporter.emit("export", 0, total, "writing level 0")
    # Each tile is reported before it is handed over: the writer stops asking after the
    # last tile, so a report after the yield would never send the final one.
    for index, box in grid.boxes():
        pixels = slide.read_region(box.x, box.y, box.width, box.height)
        reporter.emit("export", index + 1, total, f"tile {index + 1} of {total}")
        yield pixels


def _copy_plan(copier: JpegTileCopier, info: SlideInfo, mpp: tuple[float, float] | None,
               reporter: ProgressReporter) -> _Plan:
    layout = copier.layout
    tables, removed_from_tables = (strip_jpeg_text(layout.jpegtables)
                                   if layout.jpegtables is not None else (None, 0))
    spec = PyramidSpec(width=info.width, height=info.height, tile_width=layout.tile_width,
                       tile_height=layout.tile_height, compression="jpeg", jpeg_quality=90,
                       mpp=mpp, jpeg_copy=replace(layout, jpegtables=tables), deidentified=True)
    total = len(TileGrid(info.width, info.height, layout.tile_width, layout.tile_height))
    plan = _Plan(spec=spec, mode="copied", tiles=iter(()), close=copier.close,
                 stripped=[removed_from_tables])

    def tiles() -> Iterator[Level0Tile]:
        reporter.emit("export", 0, total, "copying level-0 tiles")
        for index in range(total):
            raw = copier.raw_tile(index)
            data, removed = strip_jpeg_text(raw)
            plan.stripped[0] += removed
            tile = CopiedTile(data=data, pixels=copier.decode(raw))
            reporter.emit("export", index + 1, total, f"tile {index + 1} of {total}")
            yield tile

    plan.tiles = tiles()
    return plan


def _is_text_segment(marker: int) -> bool:
    """Return whether a JPEG segment may hold free text: COM, or APPn other than JFIF/Adobe."""
    return marker == _COM or (_APP0 < marker <= _APP15 and marker != _APP14)


def strip_jpeg_text(data: bytes) -> tuple[bytes, int]:
    """Return a JPEG stream without its text-bearing header segments, and how many went.

    Only segments before the first start-of-scan are inspected; they never affect the
    decoded pixels except APP14 (Adobe colour transform), which is kept with APP0 (JFIF).
    """
    if data[:2] != b"\xff\xd8":
        return data, 0
    kept = bytearray(data[:2])
    position, removed = 2, 0
    while position + 4 <= len(data):
        marker, length = struct.unpack(">HH", data[position:position + 4])
        if marker in (_SOS, _EOI) or marker >> 8 != 0xFF or length < 2:
            break
        end = position + 2 + length
        if _is_text_segment(marker):
            removed += 1
        else:
            kept += data[position:end]
        position = end
    kept += data[position:]
    return bytes(kept), removed


def describe_removed(path: str | Path) -> list[str]:
    """List the tags and pages of ``path`` that an export of it leaves out."""
    tag_pages: Counter[str] = Counter()
    extra_pages = 0
    with quiet_third_party(), tifffile.TiffFile(path) as tif:
        for index, page in enumerate(_pages(tif)):
            if index and not _is_reduced_level(page):
                extra_pages += 1
                continue
            for tag in page.tags.values():
                if tag.code not in ALLOWED_TAGS:
                    tag_pages[f"{tag.name} ({tag.code})"] += 1
    removed = [f"{name} tag on {count} page{'s' if count != 1 else ''}"
               for name, count in sorted(tag_pages.items())]
    if extra_pages:
        removed.append(f"{extra_pages} pages that are not pyramid levels (associated images)")
    return removed


def _is_reduced_level(page: tifffile.TiffPage) -> bool:
    return bool(int(page.subfiletype) & 1)


def _pages(tif: tifffile.TiffFile) -> list[tifffile.TiffPage]:
    """Return every page of the main IFD chain as a full TiffPage with all its tags."""
    tif.pages.useframes = False
    return [page if isinstance(page, tifffile.TiffPage) else page.aspage() for page in tif.pages]


def verify_deidentified(path: str | Path, *, forbidden_text: Sequence[str] = ()) -> list[str]:
    """Read ``path`` back and return the checks it passed; raise DeidentificationError if any fails.

    Checks every page and tag with tifffile, the JPEG tables and tile headers, opens the
    file with OpenSlide, and searches all of its bytes, case-insensitively, for each
    string of ``forbidden_text``. The returned descriptions never quote that text.
    """
    path = Path(path)
    needles = [text for text in forbidden_text if text]
    problems: list[str] = []
    checks: list[str] = []
    try:
        with quiet_third_party(), tifffile.TiffFile(path) as tif:
            checks += _check_structure(tif, problems)
            checks += _check_tags(tif, problems)
            checks += _check_jpeg_segments(tif, path, problems)
    except (tifffile.TiffFileError, OSError, ValueError) as exc:
        raise DeidentificationError(path, [f"tifffile cannot read it ({exc})"]) from exc
    checks += _check_openslide(path, problems)
    found = _find_text(path, needles)
    if found:
        problems.append(f"{len(found)} of {len(needles)} forbidden names occur in the file's "
                        "bytes")
    else:
        checks.append(f"{len(needles)} original names searched in every byte, none found")
    if problems:
        raise DeidentificationError(path, problems)
    return checks


def _check_structure(tif: tifffile.TiffFile, problems: list[str]) -> list[str]:
    pages = _pages(tif)
    if not tif.is_bigtiff:
        problems.append("not a BigTIFF file")
    if len(tif.series) != 1:
        problems.append(f"{len(tif.series)} image series; only the pyramid may be present")
    previous_width = None
    for index, page in enumerate(pages, start=1):
        if not page.is_tiled:
            problems.append(f"page {index} is not tiled")
        is_reduced = _is_reduced_level(page)
        if index == 1 and is_reduced:
            problems.append("page 1 is flagged as a reduced image")
        if index > 1 and (not is_reduced or previous_width is None
                          or page.imagewidth >= previous_width):
            problems.append(f"page {index} ({page.imagewidth}x{page.imagelength}, "
                            f"NewSubfileType {int(page.subfiletype)}) is not a reduced pyramid "
                            "level: label, macro and thumbnail images are not allowed")
        previous_width = page.imagewidth
    return [f"1 image series of {len(pages)} tiled pages",
            "pages after the first are reduced levels (NewSubfileType 1); "
            "no label, macro or thumbnail image"]


def _check_tags(tif: tifffile.TiffFile, problems: list[str]) -> list[str]:
    seen: set[str] = set()
    for index, page in enumerate(_pages(tif), start=1):
        for tag in page.tags.values():
            if tag.code in ALLOWED_TAGS:
                seen.add(ALLOWED_TAGS[tag.code])
            else:
                problems.append(f"page {index} has tag {tag.name} ({tag.code})")
    return [f"only geometry, encoding and resolution tags: {', '.join(sorted(seen))}"]


def _check_jpeg_segments(tif: tifffile.TiffFile, path: Path, problems: list[str]) -> list[str]:
    tiles_checked = 0
    with path.open("rb") as handle:
        def read(offset: int, size: int) -> bytes:
            handle.seek(offset)
            return handle.read(size)

        for index, page in enumerate(_pages(tif), start=1):
            if int(page.compression) != 7:  # JPEG
                continue
            tables = page.tags.get(347)
            if tables is not None:
                _, text_segments = strip_jpeg_text(bytes(tables.value))
                if text_segments:
                    problems.append(f"page {index}: JPEGTables has {text_segments} comment or "
                                    "application segments")
            for offset, size in zip(page.dataoffsets, page.databytecounts, strict=True):
                if size and any(map(_is_text_segment, _jpeg_header_markers(read, offset, size))):
                    problems.append(f"page {index}: a JPEG tile at byte {offset} has a comment "
                                    "or application segment")
                    break
                tiles_checked += 1
    if not tiles_checked:
        return ["no JPEG-compressed tiles, so no JPEG comment or application segments"]
    return [f"{tiles_checked} JPEG tiles and their tables have no comment or application "
            "segments"]


def _jpeg_header_markers(read: Callable[[int, int], bytes], offset: int, size: int) -> list[int]:
    """Return the markers of a JPEG stream's header segments, up to its start of scan."""
    if read(offset, 2) != b"\xff\xd8":
        return []
    markers, position = [], 2
    while position + 4 <= size:
        head = read(offset + position, 4)
        if len(head) < 4:
            break
        marker, length = struct.unpack(">HH", head)
        if marker in (_SOS, _EOI) or marker >> 8 != 0xFF or length < 2:
            break
        markers.append(marker)
        position += 2 + length
    return markers


def _check_openslide(path: Path, problems: list[str]) -> list[str]:
    import openslide

    try:
        with openslide.OpenSlide(str(path)) as handle:
            vendor = handle.properties.get(openslide.PROPERTY_NAME_VENDOR)
            associated = sorted(handle.associated_images)
            levels = handle.level_count
    except openslide.OpenSlideError as exc:
        problems.append(f"OpenSlide cannot open it ({exc})")
        return []
    if vendor != "generic-tiff":
        problems.append(f"OpenSlide reads it as {vendor!r}, not generic-tiff")
    if associated:
        problems.append(f"OpenSlide finds associated images: {', '.join(associated)}")
    return [f"OpenSlide opens it as {vendor} with {levels} levels and no associated images"]


def _find_text(path: Path, needles: Sequence[str]) -> list[str]:
    """Return the needles found in the file's bytes, compared in lower case (UTF-8)."""
    patterns = {text: text.lower().encode("utf-8") for text in needles}
    if not patterns:
        return []
    overlap = max(len(pattern) for pattern in patterns.values()) - 1
    found: set[str] = set()
    tail = b""
    with path.open("rb") as handle:
        while chunk := handle.read(_SEARCH_CHUNK):
            window = tail + chunk.lower()
            found.update(text for text, pattern in patterns.items() if pattern in window)
            tail = window[-overlap:] if overlap else b""
    return sorted(found)
