"""RQ job functions of the GPU queue; the worker provides the resident models."""

from __future__ import annotations

from inkweb.runs.services import run_execute


def run_execute_job(*, run_id: int) -> str:
    """Execute one pipeline run with the worker's resident models; returns the final status."""
    from inkweb.worker import resident_models, worker_device

    run = run_execute(run_id=run_id, device=worker_device(), load_models=resident_models)
    return run.status
