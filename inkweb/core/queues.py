"""RQ queues of the project: "ingest" for reading new slides, "gpu" for pipeline runs."""

from __future__ import annotations

import logging

from django.conf import settings
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job

from inkweb.core.redis import redis_connection

logger = logging.getLogger(__name__)


def queue_get(name: str) -> Queue:
    """Return the RQ queue `name` on the configured Redis."""
    return Queue(name, connection=redis_connection())


def job_enqueue(*, queue: str, func: str, job_id: str, timeout_s: int, **kwargs: object) -> Job:
    """Put a call of the dotted function `func` with `kwargs` on `queue` under `job_id`."""
    job = queue_get(queue).enqueue(
        func,
        kwargs=kwargs,
        job_id=job_id,
        job_timeout=timeout_s,
        result_ttl=24 * 3600,
        failure_ttl=7 * 24 * 3600,
        description=f"{func}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})",
    )
    logger.info("Enqueued job %s on queue %s", job_id, queue)
    return job


def job_cancel(*, job_id: str) -> bool:
    """Cancel a job that has not started; return False when it is unknown or already started."""
    connection = redis_connection()
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        logger.warning("Job %s not found in Redis; nothing to cancel there", job_id)
        return False
    if job.get_status(refresh=True) not in {"queued", "deferred", "scheduled"}:
        return False
    job.cancel()
    logger.info("Cancelled queued job %s", job_id)
    return True


def queue_names() -> tuple[str, str]:
    """Return the names of the ingest and GPU queues."""
    return settings.INKWEB_INGEST_QUEUE, settings.INKWEB_GPU_QUEUE
