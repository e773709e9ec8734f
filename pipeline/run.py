"""``run_pipeline``: screen, classify, localise, restore and write one slide."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.classify import Models, TileDecision, decide, load_default_models, predict_tiles
from pipeline.errors import InkRemovalError
from pipeline.geometry import Box, TileGrid
from pipeline.io.info import SlideInfo
from pipeline.io.jpeg_tiles import JpegTileCopier
from pipeline.io.slide import Slide, open_slide
from pipeline.io.writer import CopiedTile, Level0Tile, write_pyramid
from pipeline.models.restorers import Restorer, load_restorer
from pipeline.options import RunOptions
from pipeline.outputs import (
    MASK_NAME,
    REPORT_NAME,
    RESTORED_NAME,
    Compression,
    UnchangedMode,
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
from pipeline.process import Inspection, TileProcessor, TileResult
from pipeline.progress import ProgressCallback, ProgressReporter, StageClock
from pipeline.report import merged_regions, sha256_file, write_json
from pipeline.screen import ScreeningResult, screen_slide
from pipeline.version import __version__

logger = logging.getLogger(__name__)


def run_pipeline(slide_path: str | Path, output_dir: str | Path, *, device: str = "cpu",
                 options: RunOptions | None = None, progress: ProgressCallback | None = None,
                 models: Models | None = None) -> dict[str, Any]:
    """Remove marker ink from one slide and write restored.tiff, ink-mask.tiff and report.json.

    ``models`` defaults to ``pipeline.models.load_models(device)``. ``progress`` receives
    ProgressEvent objects; raising RunCancelled from it stops the run and leaves no
    output behind. The input file is never written; its SHA-256 is compared before
    and after the run. Returns the report that is also written as report.json.
    """
    options = options or RunOptions()
    slide_path = Path(slide_path).resolve()
    output_dir = Path(output_dir).resolve()
    check_device(device)
    check_output_dir(slide_path, output_dir)
    logger.info("pipeline run started: %s -> %s on %s", slide_path, output_dir, device)
    try:
        with staged_outputs(output_dir) as staging:
            run = _Run(slide_path=slide_path, staging=staging, device=device, options=options,
                       reporter=ProgressReporter(progress), models=models)
            report = run.execute()
    except BaseException:
        logger.info("pipeline run stopped before completion: %s", slide_path)
        raise
    logger.info("pipeline run finished: %s in %.1f s, ink found: %s", slide_path,
                report["timings_s"]["total"], report["ink_found"])
    return report


def check_device(device: str) -> None:
    """Raise InkRemovalError when ``device`` is not "cpu" or an available CUDA device."""
    if device == "cpu":
        return
    if not device.startswith("cuda"):
        raise InkRemovalError(f"unknown device {device!r}; use 'cpu' or 'cuda' (or 'cuda:N')")
    import torch

    if not torch.cuda.is_available():
        raise InkRemovalError(f"device {device!r} requested but CUDA is not available "
                              f"(torch {torch.__version__}); run with device 'cpu'")


@dataclass
class _Run:
    """State of one pipeline run; ``execute`` runs the stages in order."""

    slide_path: Path
    staging: Path
    device: str
    options: RunOptions
    reporter: ProgressReporter
    models: Models | None
    clock: StageClock = field(default_factory=StageClock)
    mask_tiles: dict[int, np.ndarray] = field(default_factory=dict)
    found_regions: list[tuple[Box, str, float]] = field(default_factory=list)
    restore_stats: list[dict[str, Any]] = field(default_factory=list)
    changed_tiles: int = 0
    model_versions: dict[str, str] = field(default_factory=dict)

    def execute(self) -> dict[str, Any]:
        started_at = datetime.now(UTC)
        start = time.perf_counter()
        self.reporter.emit("open", 0, 1, f"opening {self.slide_path.name}")
        with self.clock.measure("checksum_input"):
            sha_before = sha256_file(self.slide_path)
        with self.clock.measure("open"):
            slide = open_slide(self.slide_path)
        with slide:
            models = self._models()
            self.reporter.emit("open", 1, 1, "slide opened")
            return self._process(slide, models, sha_before=sha_before, started_at=started_at,
                                 start=start)

    def _models(self) -> Models:
        if self.models is None:
            with self.clock.measure("load_models"):
                self.models = load_default_models(self.device)
        return self.models

    def _restorer(self) -> Restorer | None:
        """Load the learned restorer of the run's method up front, so missing weights fail early."""
        if self.options.restore_method == "od":
            return None
        with self.clock.measure("load_models"):
            restorer = load_restorer(self.options.restore_method, self.device)
        self.model_versions.update(restorer.versions)
        return restorer

    def _process(self, slide: Slide, models: Models, *, sha_before: str,
                 started_at: datetime, start: float) -> dict[str, Any]:
        info = slide.info
        self.reporter.emit("screen", 0, 1, "screening at low resolution")
        with self.clock.measure("screen"):
            screening = screen_slide(slide, options=self.options)
        self.reporter.emit("screen", 1, 1, f"{len(screening.boxes)} candidate regions")

        copier, copy_reason = open_jpeg_copier(self.slide_path, info,
                                               enabled=self.options.copy_unchanged_tiles)
        try:
            grid = self._grid(info, copier)
            processor = TileProcessor(slide, grid, screening, screening.scale, self.options,
                                      self.clock, device=self.device,
                                      restorer=self._restorer())
            screened = sorted({index for box in screening.boxes
                               for index in grid.indices_touching(box)})
            decisions = self._classify(processor, models, screened)
            mode = unchanged_mode(copier, lossy=info.is_lossy)
            spec = restored_spec(info, grid, compression=self._compression(info),
                                 jpeg_quality=self.options.jpeg_quality, copier=copier,
                                 source_name=self.slide_path.name)
            # Tile reads and processing run inside the writer's loop; keep them out of
            # the writing time so that each step is counted once.
            inner_before = self._inner_seconds()
            write_start = time.perf_counter()
            levels = write_pyramid(self.staging / RESTORED_NAME, spec,
                                   self._level0_tiles(processor, decisions, copier),
                                   workdir=self.staging)
            self.clock.add("write_restored", time.perf_counter() - write_start
                           - (self._inner_seconds() - inner_before))
        finally:
            if copier is not None:
                copier.close()

        self.reporter.emit("pyramid", 0, 1, "writing the ink mask")
        with self.clock.measure("write_mask"):
            write_pyramid(self.staging / MASK_NAME,
                          mask_spec(info, grid, source_name=self.slide_path.name),
                          self._mask_tiles(grid), workdir=self.staging)
        self.reporter.emit("pyramid", 1, 1, "pyramids written")

        self.reporter.emit("finish", 0, 1, "checking the input and writing the report")
        with self.clock.measure("checksum_outputs"):
            sha_after = verify_input_unchanged(self.slide_path, sha_before)
            outputs = output_checksums(self.staging)
        self.clock.seconds["total"] = time.perf_counter() - start
        report = self._report(info, grid, screening, decisions, len(screened), mode,
                              copy_reason, levels, models, outputs, sha_before, sha_after,
                              started_at)
        write_json(self.staging / REPORT_NAME, report)
        self.reporter.emit("finish", 1, 1, "done")
        return report

    def _inner_seconds(self) -> float:
        return sum(self.clock.seconds.get(step, 0.0)
                   for step in ("read_tiles", "localise", "restore", "compose"))

    def _compression(self, info: SlideInfo) -> Compression:
        return "jpeg" if info.is_lossy else self.options.lossless_compression

    def _grid(self, info: SlideInfo, copier: JpegTileCopier | None) -> TileGrid:
        if copier is not None:
            return TileGrid(info.width, info.height, copier.layout.tile_width,
                            copier.layout.tile_height)
        return TileGrid(info.width, info.height, self.options.tile_size, self.options.tile_size)

    def _classify(self, processor: TileProcessor, models: Models,
                  screened: list[int]) -> dict[int, TileDecision]:
        decisions: dict[int, TileDecision] = {}
        total = len(screened)
        self.reporter.emit("classify", 0, total, f"classifying {total} screened tiles")
        batch: list[Inspection] = []
        for position, index in enumerate(screened, start=1):
            inspection = processor.inspect(index)
            if inspection.window is not None:
                batch.append(inspection)
            if len(batch) >= self.options.classify_batch_size or (position == total and batch):
                with self.clock.measure("classify"):
                    decisions.update(self._decide(models, batch))
                batch = []
            self.reporter.emit("classify", position, total, f"tile {position} of {total}")
        return decisions

    def _decide(self, models: Models, batch: list[Inspection]) -> dict[int, TileDecision]:
        windows = np.stack([inspection.window for inspection in batch
                            if inspection.window is not None])  # (N, S, S, 3)
        ink, foreground = predict_tiles(models, windows)
        decisions = {}
        for inspection, ink_probability, foreground_probability in zip(
                batch, ink, foreground, strict=True):
            decisions[inspection.index] = decide(
                inspection.index, ink_probability=float(ink_probability),
                foreground_probability=float(foreground_probability),
                ink_fraction=inspection.ink_fraction,
                ink_threshold=self.options.ink_threshold,
                foreground_threshold=self.options.foreground_threshold,
                min_ink_fraction=self.options.min_tile_ink_fraction,
                require_classifier=self.options.require_classifier)
        return decisions

    def _level0_tiles(self, processor: TileProcessor, decisions: dict[int, TileDecision],
                      copier: JpegTileCopier | None) -> Iterator[Level0Tile]:
        grid = processor.grid
        total = len(grid)
        self.reporter.emit("restore", 0, total, "restoring and writing level 0")
        for index, box in grid.boxes():
            decision = decisions.get(index)
            result = None
            if decision is not None and decision.is_ink:
                result = processor.restore(index, decision)
                self._record(decision, result)
            if result is not None and result.changed:
                yield replacement_tile(copier, index, box, result.pixels)
            else:
                with self.clock.measure("read_tiles"):
                    unchanged = self._unchanged_tile(processor.slide, box, index, copier)
                yield unchanged
            self.reporter.emit("restore", index + 1, total, f"tile {index + 1} of {total}")

    def _record(self, decision: TileDecision, result: TileResult) -> None:
        if result.mask.any():
            self.mask_tiles[decision.index] = np.packbits(result.mask, axis=None)
        for box, _ in result.regions:
            self.found_regions.append((box, decision.kind, decision.ink_probability))
        if result.changed:
            self.changed_tiles += 1
        entry = decision.to_dict()
        entry["changed"] = result.changed
        if result.stats is not None:
            entry.update(result.stats.to_dict())
        self.restore_stats.append(entry)

    def _unchanged_tile(self, slide: Slide, box: Box, index: int,
                        copier: JpegTileCopier | None) -> Level0Tile:
        if copier is None:
            return slide.read_region(box.x, box.y, box.width, box.height)
        data = copier.raw_tile(index)
        return CopiedTile(data=data, pixels=copier.decode(data))

    def _mask_tiles(self, grid: TileGrid) -> Iterator[np.ndarray]:
        for index, box in grid.boxes():
            packed = self.mask_tiles.get(index)
            if packed is None:
                yield np.zeros((box.height, box.width, 1), dtype=np.uint8)
                continue
            bits = np.unpackbits(packed, count=box.width * box.height).reshape(box.height,
                                                                              box.width)
            yield (bits * 255).astype(np.uint8)[:, :, np.newaxis]

    def _report(self, info: SlideInfo, grid: TileGrid, screening: ScreeningResult,
                decisions: dict[int, TileDecision], screened: int, mode: UnchangedMode,
                copy_reason: str, levels: list[tuple[int, int]], models: Models,
                outputs: dict[str, dict[str, str]], sha_before: str, sha_after: str,
                started_at: datetime) -> dict[str, Any]:
        regions = merged_regions(self.found_regions)
        unrecoverable = sum(entry.get("unrecoverable_pixels", 0) for entry in self.restore_stats)
        if unrecoverable:
            logger.warning("%s: %d pixels under dense ink were filled from surrounding tissue",
                           self.slide_path, unrecoverable)
        return {
            "input": input_record(info, self.slide_path, sha_before=sha_before,
                                  sha_after=sha_after),
            "ink_found": bool(regions),
            "regions": regions,
            "tiles": {
                "total": len(grid),
                "tile_width": grid.tile_width, "tile_height": grid.tile_height,
                "screened": screened,
                "classified_ink": sum(1 for decision in decisions.values() if decision.is_ink),
                "changed": self.changed_tiles,
                "unchanged_mode": mode,
                "unchanged_mode_reason": copy_reason if mode != "byte-identical" else "",
            },
            "screening": screening.to_dict(),
            "tile_decisions": self.restore_stats,
            "unrecoverable_pixels": unrecoverable,
            "output": {"levels": [list(size) for size in levels]},
            "timings_s": self.clock.rounded(),
            "restore_method": self.options.restore_method,
            "models": {**models.versions, **self.model_versions},
            "outputs": outputs,
            "pipeline_version": __version__,
            "device": self.device,
            "options": self.options.to_dict(),
            "started_at": started_at.isoformat(timespec="seconds"),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

