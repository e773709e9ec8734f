"""``revise_output``: apply a reviewer's region corrections to the output of an earlier run.

Only the tiles that a correction rectangle touches are computed again. Every other tile
comes from the previous output: its stored JPEG bytes where they can be copied, else its
decoded pixels, which a lossless output keeps exactly. Inside a rectangle,
"keep-original" puts back the scanned pixels and clears the ink mask, and "restore" runs
the tile through TileProcessor again with the chosen method and takes its pixels and
mask. Both pyramids are then rebuilt from the new level 0.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.classify import Models, TileDecision, load_default_models, predict_tiles
from pipeline.corrections import (
    Correction,
    apply_corrections,
    covered_by_original,
    local_area,
    parse_corrections,
)
from pipeline.errors import InkRemovalError
from pipeline.geometry import Box, TileGrid
from pipeline.io.info import SlideInfo
from pipeline.io.jpeg_tiles import JpegTileCopier
from pipeline.io.slide import Slide, open_slide
from pipeline.io.stored_tiles import StoredTiles
from pipeline.io.writer import CopiedTile, Level0Tile, write_pyramid
from pipeline.localise import component_regions
from pipeline.models.restorers import Restorer, load_restorer
from pipeline.options import RunOptions
from pipeline.outputs import (
    MASK_NAME,
    REPORT_NAME,
    RESTORED_NAME,
    check_output_dir,
    input_record,
    mask_spec,
    open_jpeg_copier,
    output_checksums,
    replacement_tile,
    restored_spec,
    staged_outputs,
    unchanged_mode,
    verify_input_unchanged,
)
from pipeline.process import TileProcessor, TileResult
from pipeline.progress import ProgressCallback, ProgressReporter, StageClock
from pipeline.report import merged_regions, sha256_file, write_json
from pipeline.run import check_device
from pipeline.screen import ScreeningResult, screen_slide
from pipeline.version import __version__

logger = logging.getLogger(__name__)

# Steps measured inside the level-0 loop, which runs inside the writer's.
_INNER_STEPS = ("read_tiles", "localise", "restore", "compose", "classify", "copy_tiles",
                "correct_tiles")


def revise_output(slide_path: str | Path, previous_dir: str | Path, output_dir: str | Path,
                  corrections: Sequence[Mapping[str, Any] | Correction], *,
                  options: RunOptions, progress: ProgressCallback | None = None,
                  device: str = "cpu", models: Models | None = None) -> dict[str, Any]:
    """Apply ``corrections`` to the output in ``previous_dir``; write the result to ``output_dir``.

    ``previous_dir`` contains restored.tiff and ink-mask.tiff of an earlier run (or revision)
    of ``slide_path``. ``output_dir`` receives a new restored.tiff, ink-mask.tiff and
    report.json, renamed into place together at the end as ``run_pipeline`` does.
    ``options`` are the run's options, and each restore correction uses them with its own
    ``restore_method``. ``models`` (loaded from ``pipeline.models`` when needed and not
    given) classify restored tiles that the previous run did not classify. Raises
    InvalidCorrectionError for corrections that do not fit the slide and InkRemovalError
    for a missing or mismatched previous output. Neither the input nor ``previous_dir``
    is written. Returns the report that is also written as report.json.
    """
    slide_path = Path(slide_path).resolve()
    previous_dir = Path(previous_dir).resolve()
    output_dir = Path(output_dir).resolve()
    check_device(device)
    check_output_dir(slide_path, output_dir)
    if output_dir == previous_dir:
        raise InkRemovalError(f"output folder {output_dir} is the previous output's folder; "
                              "write the revision into a new folder")
    for name in (RESTORED_NAME, MASK_NAME):
        if not (previous_dir / name).is_file():
            raise InkRemovalError(f"previous output {previous_dir / name} is missing; "
                                  "revise a finished run's output folder")

    logger.info("revision started: %s from %s -> %s on %s", slide_path, previous_dir,
                output_dir, device)
    try:
        with staged_outputs(output_dir) as staging:
            revision = _Revision(slide_path=slide_path, previous_dir=previous_dir,
                                 staging=staging, requested=list(corrections), device=device,
                                 options=options, reporter=ProgressReporter(progress),
                                 models=models)
            report = revision.execute()
    except BaseException:
        logger.info("revision stopped before completion: %s", slide_path)
        raise
    logger.info("revision finished: %s in %.1f s, %d tiles touched", slide_path,
                report["timings_s"]["total"], report["tiles"]["touched"])
    return report


def _with_candidates(screening: ScreeningResult, boxes: list[Box]) -> ScreeningResult:
    """Return ``screening`` with every box added to the candidate area.

    A reviewer who requests a restore vouches for ink there, so the colour rules may
    find ink in the rectangle even where screening found no candidate region.
    """
    candidate = screening.candidate_mask.copy()
    height, width = candidate.shape
    for box in boxes:
        # scaled() rounds outwards, so every level-0 pixel of the box maps into the area.
        area = box.scaled(1.0 / screening.downsample).clipped(width, height)
        candidate[area.y:area.bottom, area.x:area.right] = True
    return dataclasses.replace(screening, candidate_mask=candidate,
                               boxes=[*screening.boxes, *boxes],
                               ink_vectors=[*screening.ink_vectors, *({} for _ in boxes)])


@dataclass
class _Revision:
    """State of one revision; ``execute`` reads the previous output and writes the new one."""

    slide_path: Path
    previous_dir: Path
    staging: Path
    requested: list[Mapping[str, Any] | Correction]
    device: str
    options: RunOptions
    reporter: ProgressReporter
    models: Models | None
    clock: StageClock = field(default_factory=StageClock)
    models_used: bool = False
    model_versions: dict[str, str] = field(default_factory=dict)
    screening: ScreeningResult | None = None
    processors: dict[str, TileProcessor] = field(default_factory=dict)
    previous_decisions: dict[int, dict[str, Any]] = field(default_factory=dict)
    parent_regions: list[dict[str, Any]] = field(default_factory=list)
    # Model versions and restore method of the parent's report, which made every pixel
    # outside the corrections.
    parent_models: dict[str, str] = field(default_factory=dict)
    parent_restore_method: str | None = None
    # Packed (tile.height * tile.width) bool masks of restore results, by (tile, method).
    restored_masks: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)
    found_regions: list[tuple[Box, str, float]] = field(default_factory=list)
    restore_stats: list[dict[str, Any]] = field(default_factory=list)
    changed_tiles: int = 0
    copied_from_original: int = 0

    def execute(self) -> dict[str, Any]:
        started_at = datetime.now(UTC)
        start = time.perf_counter()
        self.reporter.emit("open", 0, 1, f"opening {self.slide_path.name}")
        with self.clock.measure("checksum_input"):
            sha_before = sha256_file(self.slide_path)
        with self.clock.measure("checksum_parent"):
            parent = self._parent_record()
        with self.clock.measure("open"):
            slide = open_slide(self.slide_path)
        with slide, StoredTiles(self.previous_dir / RESTORED_NAME) as previous, \
                StoredTiles(self.previous_dir / MASK_NAME) as previous_mask:
            info = slide.info
            corrections = parse_corrections(self.requested, width=info.width,
                                            height=info.height)
            self._check_previous(info, previous, previous_mask)
            self.reporter.emit("open", 1, 1, f"{len(corrections)} corrections to apply")
            grid = TileGrid(info.width, info.height, previous.tile_width, previous.tile_height)
            touched: dict[int, list[Correction]] = {}
            for correction in corrections:
                for index in grid.indices_touching(correction.box):
                    touched.setdefault(index, []).append(correction)
            self._prepare_restore(slide, grid, corrections)
            levels, mode, copy_reason = self._write_restored(slide, grid, previous, touched)
            self.reporter.emit("pyramid", 0, 1, "writing the ink mask")
            with self.clock.measure("write_mask"):
                write_pyramid(self.staging / MASK_NAME,
                              mask_spec(info, grid, source_name=self.slide_path.name),
                              self._mask_tiles(grid, previous_mask, touched),
                              workdir=self.staging)
            self.reporter.emit("pyramid", 1, 1, "pyramids written")

        self.reporter.emit("finish", 0, 1, "checking the input and writing the report")
        with self.clock.measure("checksum_outputs"):
            sha_after = verify_input_unchanged(self.slide_path, sha_before)
            outputs = output_checksums(self.staging)
        self.clock.seconds["total"] = time.perf_counter() - start
        report = self._report(info, grid, corrections, touched, parent, mode, copy_reason,
                              levels, outputs, sha_before, sha_after, started_at)
        write_json(self.staging / REPORT_NAME, report)
        self.reporter.emit("finish", 1, 1, "done")
        return report

    def _parent_record(self) -> dict[str, Any]:
        """Checksum the previous output and read its report's tile decisions."""
        report_path = self.previous_dir / REPORT_NAME
        parent_report: dict[str, Any] = {}
        if report_path.is_file():
            try:
                parent_report = json.loads(report_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                # NOTE: without the previous decisions, restored tiles are classified again.
                logger.warning("%s could not be read (%s); tiles will be classified again",
                               report_path, exc)
        for entry in parent_report.get("tile_decisions") or []:
            if isinstance(entry, dict) and isinstance(entry.get("index"), int):
                self.previous_decisions[entry["index"]] = entry
        self.parent_regions = [region for region in parent_report.get("regions") or []
                               if isinstance(region, dict)]
        models = parent_report.get("models")
        if isinstance(models, dict):
            self.parent_models = {str(name): str(version) for name, version in models.items()}
        method = parent_report.get("restore_method")
        self.parent_restore_method = method if isinstance(method, str) else None
        return {
            "path": str(self.previous_dir),
            "restored_sha256": sha256_file(self.previous_dir / RESTORED_NAME),
            "mask_sha256": sha256_file(self.previous_dir / MASK_NAME),
            "pipeline_version": parent_report.get("pipeline_version"),
            "models": dict(self.parent_models),
            "restore_method": self.parent_restore_method,
        }

    def _check_previous(self, info: SlideInfo, previous: StoredTiles,
                        previous_mask: StoredTiles) -> None:
        for stored, samples in ((previous, 3), (previous_mask, 1)):
            if (stored.width, stored.height) != (info.width, info.height):
                raise InkRemovalError(
                    f"previous output {stored.path} is {stored.width}x{stored.height} pixels "
                    f"but {self.slide_path.name} is {info.width}x{info.height}; it was not "
                    "made from this slide")
            if stored.samples != samples:
                raise InkRemovalError(f"previous output {stored.path} has {stored.samples} "
                                      f"samples per pixel; expected {samples}")
        if (previous.tile_width, previous.tile_height) != (previous_mask.tile_width,
                                                           previous_mask.tile_height):
            raise InkRemovalError(f"restored.tiff and ink-mask.tiff in {self.previous_dir} "
                                  "have different tile sizes; they are not one run's output")

    def _prepare_restore(self, slide: Slide, grid: TileGrid,
                         corrections: list[Correction]) -> None:
        """Screen the slide and build one TileProcessor per restore method requested."""
        boxes = [correction.box for correction in corrections if correction.action == "restore"]
        if not boxes:
            return
        self.reporter.emit("screen", 0, 1, "screening at low resolution")
        with self.clock.measure("screen"):
            self.screening = screen_slide(slide, options=self.options)
        gated = _with_candidates(self.screening, boxes)
        self.reporter.emit("screen", 1, 1, "glass colour and stain vectors measured")
        methods = sorted({correction.method for correction in corrections
                          if correction.method is not None})
        for method in methods:
            # TileProcessor dispatches on restore_method; the other options stay the run's.
            options = dataclasses.replace(self.options, restore_method=method)
            self.processors[method] = TileProcessor(slide, grid, gated, gated.scale, options,
                                                    self.clock, device=self.device,
                                                    restorer=self._restorer(method))

    def _restorer(self, method: str) -> Restorer | None:
        """Load a learned method's restorer up front, so that missing weights fail early."""
        if method == "od":
            return None
        with self.clock.measure("load_models"):
            restorer = load_restorer(method, self.device)
        self.model_versions.update(restorer.versions)
        return restorer

    def _write_restored(self, slide: Slide, grid: TileGrid, previous: StoredTiles,
                        touched: dict[int, list[Correction]]
                        ) -> tuple[list[tuple[int, int]], str, str]:
        info = slide.info
        with open_slide(previous.path) as previous_slide:
            previous_info = previous_slide.info
        copier, copy_reason = None, ""
        if previous.compression == "jpeg":
            copier, copy_reason = open_jpeg_copier(previous.path, previous_info,
                                                   enabled=self.options.copy_unchanged_tiles)
        source = self._source_copier(info, copier)
        try:
            compression = previous.compression or self.options.lossless_compression
            spec = restored_spec(info, grid, compression=compression,
                                 jpeg_quality=self.options.jpeg_quality, copier=copier,
                                 source_name=self.slide_path.name)
            # Tile work runs inside the writer's loop; keep it out of the writing time.
            inner_before = self._inner_seconds()
            write_start = time.perf_counter()
            levels = write_pyramid(self.staging / RESTORED_NAME, spec,
                                   self._level0_tiles(slide, grid, previous, touched, copier,
                                                      source),
                                   workdir=self.staging)
            self.clock.add("write_restored", time.perf_counter() - write_start
                           - (self._inner_seconds() - inner_before))
        finally:
            for opened in (copier, source):
                if opened is not None:
                    opened.close()
        mode = unchanged_mode(copier, lossy=previous.compression == "jpeg")
        return levels, mode, copy_reason if mode != "byte-identical" else ""

    def _source_copier(self, info: SlideInfo,
                       copier: JpegTileCopier | None) -> JpegTileCopier | None:
        """Return a copier of the input's tiles when they fit the previous output's layout.

        Tiles that keep-original rectangles cover completely are then copied from the
        input, so they keep the scanned bytes instead of a re-encoding.
        """
        if copier is None or info.compression != "jpeg":
            return None
        source, _ = JpegTileCopier.open(self.slide_path, info)
        if source is not None and source.layout != copier.layout:
            source.close()
            return None
        return source

    def _inner_seconds(self) -> float:
        return sum(self.clock.seconds.get(step, 0.0) for step in _INNER_STEPS)

    def _level0_tiles(self, slide: Slide, grid: TileGrid, previous: StoredTiles,
                      touched: dict[int, list[Correction]], copier: JpegTileCopier | None,
                      source: JpegTileCopier | None) -> Iterator[Level0Tile]:
        total = len(grid)
        self.reporter.emit("restore", 0, total, f"applying corrections to {len(touched)} tiles")
        for index, box in grid.boxes():
            corrections = touched.get(index)
            tile: Level0Tile
            if corrections is None:
                with self.clock.measure("copy_tiles"):
                    tile = self._previous_tile(previous, copier, index, box)
            else:
                tile = self._corrected_tile(slide, previous, copier, source, index, box,
                                            corrections)
            yield tile
            self.reporter.emit("restore", index + 1, total, f"tile {index + 1} of {total}")

    def _previous_tile(self, previous: StoredTiles, copier: JpegTileCopier | None, index: int,
                       box: Box) -> Level0Tile:
        if copier is None:
            return previous.tile(index)[:box.height, :box.width]
        data = copier.raw_tile(index)
        return CopiedTile(data=data, pixels=copier.decode(data))

    def _corrected_tile(self, slide: Slide, previous: StoredTiles, copier: JpegTileCopier | None,
                        source: JpegTileCopier | None, index: int, box: Box,
                        corrections: list[Correction]) -> Level0Tile:
        results: dict[str, TileResult] = {}

        def restored(method: str) -> np.ndarray:
            if method not in results:
                results[method] = self._restore_tile(index, method, corrections)
            return results[method].pixels

        original: list[np.ndarray] = []

        def kept() -> np.ndarray:
            if not original:
                with self.clock.measure("read_tiles"):
                    original.append(slide.read_region(box.x, box.y, box.width, box.height))
            return original[0]

        with self.clock.measure("copy_tiles"):
            previous_data = copier.raw_tile(index) if copier is not None else b""
            previous_full = (copier.decode(previous_data) if copier is not None
                             else previous.tile(index))
        before = previous_full[:box.height, :box.width]
        pixels = apply_corrections(before, box, corrections, keep_values=kept,
                                   restore_values=restored)
        changed = not np.array_equal(pixels, before)
        self.changed_tiles += int(changed)

        with self.clock.measure("correct_tiles"):
            if copier is None:
                return pixels
            if not changed:
                return CopiedTile(data=previous_data, pixels=previous_full)
            if source is not None and covered_by_original(box, corrections):
                self.copied_from_original += 1
                data = source.raw_tile(index)
                return CopiedTile(data=data, pixels=source.decode(data))
            return replacement_tile(copier, index, box, pixels)

    def _restore_tile(self, index: int, method: str,
                      corrections: list[Correction]) -> TileResult:
        """Restore tile ``index`` from the input with ``method``; remember its mask and regions."""
        processor = self.processors[method]
        decision = self._decision(processor, index)
        result = processor.restore(index, decision)
        self.restored_masks[(index, method)] = np.packbits(result.mask, axis=None)
        tile = processor.grid.box(index)
        for correction in corrections:
            if correction.action != "restore" or correction.method != method:
                continue
            area = np.zeros(result.mask.shape, dtype=bool)
            rows, columns = local_area(correction.box, tile)
            area[rows, columns] = result.mask[rows, columns]
            # NOTE: a later keep-original rectangle over the same pixels clears the mask
            # but leaves this region in the report.
            for region_box, _ in component_regions(area, origin=tile):
                self.found_regions.append((region_box, decision.kind, decision.ink_probability))
        entry = decision.to_dict()
        entry.update(changed=result.changed, method=method)
        if result.stats is not None:
            entry.update(result.stats.to_dict())
        self.restore_stats.append(entry)
        return result

    def _decision(self, processor: TileProcessor, index: int) -> TileDecision:
        """Return an ink decision for the tile; its kind comes from the previous run if known."""
        previous = self.previous_decisions.get(index)
        if previous is not None and previous.get("kind") in ("background", "foreground"):
            return TileDecision(
                index=index, ink_probability=float(previous.get("ink_probability", 1.0)),
                foreground_probability=float(previous.get("foreground_probability", 1.0)),
                ink_fraction=float(previous.get("ink_fraction", 0.0)), is_ink=True,
                kind=previous["kind"])
        inspection = processor.inspect(index)
        if inspection.window is None:
            # Too little rule-detected ink for the classifiers; restore it as over tissue.
            return TileDecision(index=index, ink_probability=0.0, foreground_probability=1.0,
                                ink_fraction=inspection.ink_fraction, is_ink=True,
                                kind="foreground")
        with self.clock.measure("classify"):
            ink, foreground = predict_tiles(self._models(), inspection.window[np.newaxis])
        return TileDecision(
            index=index, ink_probability=float(ink[0]),
            foreground_probability=float(foreground[0]), ink_fraction=inspection.ink_fraction,
            is_ink=True,
            kind="foreground" if foreground[0] >= self.options.foreground_threshold
            else "background")

    def _models(self) -> Models:
        if self.models is None:
            with self.clock.measure("load_models"):
                self.models = load_default_models(self.device)
        self.models_used = True
        return self.models

    def _mask_tiles(self, grid: TileGrid, previous_mask: StoredTiles,
                    touched: dict[int, list[Correction]]) -> Iterator[np.ndarray]:
        for index, box in grid.boxes():
            base = previous_mask.tile(index)[:box.height, :box.width]  # (h, w, 1)
            corrections = touched.get(index)
            if corrections is None:
                yield base
            else:
                yield self._corrected_mask(base, index, box, corrections)

    def _corrected_mask(self, base: np.ndarray, index: int, box: Box,
                        corrections: list[Correction]) -> np.ndarray:
        def cleared() -> np.ndarray:
            return np.zeros_like(base)

        def restored(method: str) -> np.ndarray:
            bits = np.unpackbits(self.restored_masks[(index, method)], count=box.width * box.height)
            return (bits.reshape(box.height, box.width, 1) * 255).astype(np.uint8)

        return apply_corrections(base, box, corrections, keep_values=cleared,
                                 restore_values=restored)

    def _report(self, info: SlideInfo, grid: TileGrid, corrections: list[Correction],
                touched: dict[int, list[Correction]], parent: dict[str, Any], mode: str,
                copy_reason: str, levels: list[tuple[int, int]], outputs: dict[str, Any],
                sha_before: str, sha_after: str, started_at: datetime) -> dict[str, Any]:
        regions = merged_regions(self._kept_parent_regions(corrections) + self.found_regions)
        decisions = dict(self.previous_decisions)
        for entry in self.restore_stats:
            decisions[entry["index"]] = entry
        unrecoverable = sum(entry.get("unrecoverable_pixels", 0) for entry in self.restore_stats)
        return {
            "kind": "revision",
            "input": input_record(info, self.slide_path, sha_before=sha_before,
                                  sha_after=sha_after),
            "parent": parent,
            "corrections": [dict(correction.to_dict(),
                                 tiles=grid.indices_touching(correction.box))
                            for correction in corrections],
            "ink_found": bool(regions),
            "regions": regions,
            "tiles": {
                "total": len(grid),
                "tile_width": grid.tile_width, "tile_height": grid.tile_height,
                "touched": len(touched),
                "changed": self.changed_tiles,
                "copied_from_original": self.copied_from_original,
                "unchanged_mode": mode,
                "unchanged_mode_reason": copy_reason,
            },
            "screening": self.screening.to_dict() if self.screening is not None else None,
            "tile_decisions": [decisions[index] for index in sorted(decisions)],
            "unrecoverable_pixels": unrecoverable,
            "output": {"levels": [list(size) for size in levels]},
            "timings_s": self.clock.rounded(),
            # The parent's versions, then those of the classifiers and restorers this
            # revision ran, which win where a name repeats. "parent" keeps the parent's own.
            "models": {**self.parent_models,
                       **(self.models.versions if self.models_used and self.models else {}),
                       **self.model_versions},
            # The method of the pixels outside the corrections; each restore correction
            # names its own method under "corrections".
            "restore_method": self.parent_restore_method or self.options.restore_method,
            "outputs": outputs,
            "pipeline_version": __version__,
            "device": self.device,
            "options": self.options.to_dict(),
            "started_at": started_at.isoformat(timespec="seconds"),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def _kept_parent_regions(self, corrections: list[Correction]) -> list[tuple[Box, str, float]]:
        """Return the previous regions, less those inside one keep-original rectangle.

        NOTE: a region only partly inside such a rectangle keeps its whole box.
        """
        kept_boxes = [correction.box for correction in corrections
                      if correction.action == "keep-original"]
        regions = []
        for region in self.parent_regions:
            try:
                box = Box(int(region["x"]), int(region["y"]), int(region["width"]),
                          int(region["height"]))
            except (KeyError, TypeError, ValueError):
                continue
            if any(box.x >= kept.x and box.y >= kept.y and box.right <= kept.right
                   and box.bottom <= kept.bottom for kept in kept_boxes):
                continue
            regions.append((box, str(region.get("kind", "foreground")),
                            float(region.get("score", 0.0))))
        return regions
