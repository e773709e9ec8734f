"""Helpers of the dataset tests: succeeded runs with real restored outputs, approvals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from inkweb.core.storage import storage_relative, storage_root
from inkweb.reviews.services import review_record
from inkweb.runs.models import PipelineRun
from inkweb.slides.models import Slide


def processed_run_for(slide: Slide, requested_by, outputs: tuple[Path, dict]) -> PipelineRun:
    """Create a succeeded run of `slide` whose output folder is a copy of `outputs`."""
    source, report = outputs
    run = PipelineRun.objects.create(slide=slide, requested_by=requested_by)
    folder = storage_root() / "outputs" / f"slide-{slide.pk}" / f"run-{run.pk}"
    shutil.copytree(source, folder)
    restored = report.get("outputs", {}).get("restored", {})
    PipelineRun.objects.filter(pk=run.pk).update(
        status=PipelineRun.Status.SUCCEEDED,
        progress=1.0,
        report=json.loads(json.dumps(report, default=str)),
        ink_found=bool(report.get("ink_found")),
        output_dir=storage_relative(folder),
        restored_path=storage_relative(folder / "restored.tiff"),
        mask_path=storage_relative(folder / "ink-mask.tiff"),
        report_path=storage_relative(folder / "report.json"),
        restored_sha256=restored.get("sha256", ""),
    )
    run.refresh_from_db()
    return run


def approve(run: PipelineRun, reviewer) -> None:
    """Record an approval of `run` by `reviewer`."""
    review_record(slide=run.slide, reviewer=reviewer, decision="approve", run=run)
