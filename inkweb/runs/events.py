"""WebSocket messages about runs: their shape and how they are sent."""

from __future__ import annotations

from typing import Any

from inkweb.core.broadcast import ALL_ACTIVITY_GROUP, broadcast_send, slide_group
from inkweb.runs.models import PipelineRun


def run_event_payload(run: PipelineRun) -> dict[str, Any]:
    """Return the JSON-safe fields of a run that pages show live."""
    return {
        "id": run.pk,
        "slide_id": run.slide_id,
        "status": run.status,
        "progress": run.progress,
        "stage": run.stage,
        "message": run.message,
        "error": run.error,
    }


def run_event_send(payload: dict[str, Any]) -> None:
    """Send a run's state to the slide's group and to the all-activity group."""
    broadcast_send(
        groups=[ALL_ACTIVITY_GROUP, slide_group(payload["slide_id"])],
        message={"type": "run.progress", "run": payload},
    )


def run_broadcast(run: PipelineRun) -> None:
    """Send the current state of `run`."""
    run_event_send(run_event_payload(run))
