"""Progress of an export job: throttled row updates, broadcasts and cancellation checks."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.utils import timezone

from inkweb.datasets.cancellation import export_cancel_flag_is_set
from inkweb.datasets.events import export_event_send
from inkweb.datasets.models import DatasetExport
from pipeline import ProgressEvent
from pipeline.export import ExportCancelled, export_fraction

# Share of the progress bar taken by writing the slides; the manifest and the upload
# to the object store share the rest.
SLIDES_SHARE = 0.9


class ExportProgressReporter:
    """Records the progress of one export.

    At most once per `interval_s` (unless forced) it checks the cancellation flag,
    writes progress to the export's row and broadcasts it. It raises ExportCancelled
    when the flag is set or when the row is no longer "running" (cancelled through the
    API), which makes the export stop and remove its partial files.
    """

    def __init__(
        self,
        *,
        export_id: int,
        dataset_id: int,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.export_id = export_id
        self.dataset_id = dataset_id
        self.interval_s = interval_s
        self._clock = clock
        self._last_write: float | None = None

    def report(self, fraction: float, stage: str, message: str, *, force: bool = False) -> None:
        """Record `fraction` (0..1 of the whole export) unless the last write was too recent."""
        now = self._clock()
        if not force and self._last_write is not None and now - self._last_write < self.interval_s:
            return
        self._last_write = now

        if export_cancel_flag_is_set(export_id=self.export_id):
            raise ExportCancelled(f"export {self.export_id} was cancelled")

        fraction = min(max(float(fraction), 0.0), 1.0)
        stage, message = str(stage)[:100], str(message)[:500]
        updated = DatasetExport.objects.filter(
            pk=self.export_id, status=DatasetExport.Status.RUNNING
        ).update(progress=fraction, stage=stage, message=message, updated_at=timezone.now())
        if not updated:
            raise ExportCancelled(f"export {self.export_id} is no longer running")

        export_event_send(
            {
                "id": self.export_id,
                "dataset_id": self.dataset_id,
                "status": DatasetExport.Status.RUNNING,
                "progress": fraction,
                "stage": stage,
                "message": message,
                "error": "",
            }
        )

    def slide_callback(self, *, index: int, count: int, identifier: str):
        """Return a pipeline progress callback for slide `index` (0-based) of `count`."""

        def callback(event: ProgressEvent) -> None:
            within = export_fraction(event)
            fraction = SLIDES_SHARE * (index + within) / count
            self.report(
                fraction, "export", f"{identifier} ({index + 1} of {count}): {event.message}"
            )

        return callback
