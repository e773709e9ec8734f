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


def run_ancestry(*, run: PipelineRun) -> list[PipelineRun]:
    """Return `run` followed by its revision parents, up to the full run at the root.

    Reads one row per parent. A parent that was deleted ends the chain there.
    """
    chain = [run]
    seen = {run.pk}
    current = run
    # The guard against revisiting a run stops at a cycle, which only hand-edited rows form.
    while current.parent_id is not None and current.parent_id not in seen:
        parent = PipelineRun.objects.filter(pk=current.parent_id).first()
        if parent is None:
            break
        chain.append(parent)
        seen.add(parent.pk)
        current = parent
    return chain


def run_lineage(*, run: PipelineRun) -> list[PipelineRun]:
    """Return the runs linked to `run` through revision parents, oldest first.

    The lineage is the full run at the root of `run`'s parent chain and every revision
    descending from it. The slide's runs are read in one query.
    """
    runs = {
        item.pk: item
        for item in PipelineRun.objects.filter(slide_id=run.slide_id)
        .select_related("requested_by")
        .defer("report")
    }
    root = runs.get(run.pk, run)
    seen = {root.pk}
    # The guard against revisiting a run stops at a cycle, which only hand-edited rows form.
    while root.parent_id is not None and root.parent_id in runs and root.parent_id not in seen:
        root = runs[root.parent_id]
        seen.add(root.pk)

    children: dict[int, list[PipelineRun]] = {}
    for item in runs.values():
        if item.parent_id is not None:
            children.setdefault(item.parent_id, []).append(item)
    lineage, pending, visited = [], [root], {root.pk}
    while pending:
        current = pending.pop()
        lineage.append(current)
        for child in children.get(current.pk, []):
            if child.pk not in visited:
                visited.add(child.pk)
                pending.append(child)
    return sorted(lineage, key=lambda item: (item.created_at, item.pk))
