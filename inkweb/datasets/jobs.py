"""RQ job functions of dataset exports (served by workers of the ingest queue)."""

from __future__ import annotations

from inkweb.datasets.execution import export_execute


def dataset_export_job(*, export_id: int) -> str:
    """Execute one dataset export; returns its final status."""
    return export_execute(export_id=export_id).status
