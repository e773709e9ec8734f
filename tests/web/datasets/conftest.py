"""Fixtures of the dataset tests: approved slides with real restored outputs."""

from __future__ import annotations

import pytest

from inkweb.runs.models import PipelineRun
from inkweb.slides.services import slide_import
from tests.web.datasets.helpers import approve, processed_run_for


@pytest.fixture
def approved_run(processed_run, reviewer) -> PipelineRun:
    """The pen-marked slide's real run, approved by the reviewer."""
    approve(processed_run, reviewer)
    return processed_run


@pytest.fixture
def second_approved_run(shared_data, uploader, reviewer, pipeline_outputs) -> PipelineRun:
    """Another slide (boxes.tiff) with an approved run whose files copy the session's run."""
    slide = slide_import(path=shared_data / "slides" / "boxes.tiff", imported_by=uploader)
    run = processed_run_for(slide, uploader, pipeline_outputs)
    approve(run, reviewer)
    return run
