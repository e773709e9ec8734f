"""WebSocket messages about dataset exports: their shape and how they are sent."""

from __future__ import annotations

from typing import Any

from inkweb.core.broadcast import broadcast_send
from inkweb.datasets.models import DatasetExport


def dataset_group(dataset_id: int) -> str:
    """Return the group name of one dataset's export events."""
    return f"dataset-{dataset_id}"


def export_event_payload(export: DatasetExport) -> dict[str, Any]:
    """Return the JSON-safe fields of an export that the dataset page shows live."""
    return {
        "id": export.pk,
        "dataset_id": export.dataset_id,
        "status": export.status,
        "progress": export.progress,
        "stage": export.stage,
        "message": export.message,
        "error": export.error,
    }


def export_event_send(payload: dict[str, Any]) -> None:
    """Send an export's state to its dataset's group."""
    broadcast_send(
        groups=[dataset_group(payload["dataset_id"])],
        message={"type": "export.progress", "export": payload},
    )


def export_broadcast(export: DatasetExport) -> None:
    """Send the current state of `export`."""
    export_event_send(export_event_payload(export))
