"""Reads of pipeline runs."""

from __future__ import annotations

from django.db.models import QuerySet

from inkweb.core.exceptions import NotFoundError
from inkweb.runs.models import PipelineRun


def run_get(*, run_id: int) -> PipelineRun:
    """Return one run with its slide and requester, or raise NotFoundError."""
    run = PipelineRun.objects.select_related("slide", "requested_by").filter(pk=run_id).first()
    if run is None:
        raise NotFoundError(f"Run {run_id} does not exist.", code="run_not_found")
    return run


def run_list(*, slide_id: int | None = None, active: bool | None = None) -> QuerySet[PipelineRun]:
    """Return runs, newest first, optionally of one slide and only active or finished ones."""
    runs = PipelineRun.objects.select_related("requested_by").defer("report")
    if slide_id is not None:
        runs = runs.filter(slide_id=slide_id)
    if active is True:
        runs = runs.filter(status__in=PipelineRun.ACTIVE_STATUSES)
    elif active is False:
        runs = runs.exclude(status__in=PipelineRun.ACTIVE_STATUSES)
    return runs.order_by("-created_at", "-id")


def run_latest_succeeded(*, slide_id: int) -> PipelineRun | None:
    """Return the newest succeeded run of a slide, or None."""
    return (
        PipelineRun.objects.filter(slide_id=slide_id, status=PipelineRun.Status.SUCCEEDED)
        .order_by("-created_at", "-id")
        .first()
    )
