"""RQ worker that keeps pipeline models loaded for the life of the process.

RQ's default Worker forks a child per job, so every job would load the models again,
and CUDA cannot be used in a child forked after the parent initialised it. This worker
runs jobs in its own process instead (rq.SimpleWorker) and loads the models once.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections
from rq import SimpleWorker

from pipeline.errors import InkRemovalError

logger = logging.getLogger(__name__)


@functools.cache
def worker_device() -> str:
    """Return "cuda" when INKWEB_WORKER_DEVICE is auto and torch finds a GPU, else the setting."""
    configured = settings.INKWEB_WORKER_DEVICE
    if configured != "auto":
        if configured not in {"cpu", "cuda"} and not configured.startswith("cuda:"):
            raise ImproperlyConfigured(
                f"INKWEB_WORKER_DEVICE={configured!r} is not a device; "
                "use auto, cpu, cuda or cuda:N"
            )
        return configured

    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resident_models(device: str | None = None) -> Any:
    """Return the pipeline models for `device`, loading them on the first call only.

    pipeline.models.load_models caches per process, and this worker never forks, so
    every job of the process reuses the same loaded weights.
    """
    from pipeline.models import load_models

    return load_models(device or worker_device())


class ResidentWorker(SimpleWorker):
    """SimpleWorker that preloads models for the GPU queue and closes stale DB connections."""

    def work(self, *args: Any, **kwargs: Any) -> bool:
        """Load the models (when serving the GPU queue), then run RQ's work loop."""
        if settings.INKWEB_GPU_QUEUE in self.queue_names():
            self._preload_models()
        return super().work(*args, **kwargs)

    def _preload_models(self) -> None:
        device = worker_device()
        logger.info("Loading pipeline models on %s before taking jobs", device)
        try:
            resident_models(device)
        except InkRemovalError as error:
            # Keep serving: each run then fails with this message, visible to its user,
            # and loading is tried again per run, so trained weights are picked up.
            logger.error("Pipeline models could not be loaded on %s: %s", device, error)
            return
        logger.info("Pipeline models loaded on %s", device)

    def execute_job(self, job: Any, queue: Any) -> None:
        """Run one job in this process, with fresh database connections around it."""
        # A worker lives for days; the database may have closed an idle connection meanwhile.
        close_old_connections()
        try:
            super().execute_job(job, queue)
        finally:
            close_old_connections()
