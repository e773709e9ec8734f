"""The progress callback a worker passes to the pipeline: throttled writes and cancellation."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.utils import timezone

from inkweb.runs.cancellation import cancel_flag_is_set
from inkweb.runs.events import run_event_send
from inkweb.runs.models import PipelineRun
from pipeline import ProgressEvent
from pipeline.errors import RunCancelled

logger = logging.getLogger(__name__)


class RunProgressReporter:
    """Callable taking pipeline ProgressEvents for one run.

    At most once per `interval_s` it checks the cancellation flag, writes progress to the
    run's row and broadcasts it. It raises RunCancelled when the flag is set or when the
    row is no longer "running" (cancelled through the API), which makes the pipeline stop
    and remove its partial outputs.
    """

    def __init__(
        self,
        *,
        run_id: int,
        slide_id: int,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run_id = run_id
        self.slide_id = slide_id
        self.interval_s = interval_s
        self._clock = clock
        self._last_write: float | None = None

    def __call__(self, event: ProgressEvent) -> None:
        """Record `event` unless the last write was under `interval_s` ago."""
        now = self._clock()
        if self._last_write is not None and now - self._last_write < self.interval_s:
            return
        self._last_write = now

        if cancel_flag_is_set(run_id=self.run_id):
            raise RunCancelled(f"run {self.run_id} was cancelled")

        fraction = min(max(float(event.fraction), 0.0), 1.0)
        stage = str(event.stage)[:100]
        message = str(event.message)[:500]
        updated = PipelineRun.objects.filter(
            pk=self.run_id, status=PipelineRun.Status.RUNNING
        ).update(progress=fraction, stage=stage, message=message, updated_at=timezone.now())
        if not updated:
            raise RunCancelled(f"run {self.run_id} is no longer running")

        run_event_send(
            {
                "id": self.run_id,
                "slide_id": self.slide_id,
                "status": PipelineRun.Status.RUNNING,
                "progress": fraction,
                "stage": stage,
                "message": message,
                "error": "",
            }
        )
