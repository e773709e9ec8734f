"""Writes on pipeline runs: create (enqueue), cancel, retry, and execute inside a worker."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Value
from django.db.models.functions import Replace
from django.utils import timezone
from redis.exceptions import RedisError

from inkweb.audit.models import AuditEvent
from inkweb.audit.services import audit_record
from inkweb.core.exceptions import ApplicationError, ConflictError
from inkweb.core.queues import job_cancel, job_enqueue
from inkweb.core.storage import storage_absolute, storage_relative, storage_root
from inkweb.runs.cancellation import cancel_flag_clear, cancel_flag_set
from inkweb.runs.events import run_broadcast
from inkweb.runs.models import PipelineRun
from inkweb.runs.progress import RunProgressReporter
from inkweb.runs.selectors import run_latest_succeeded
from inkweb.slides.models import Slide
from pipeline import RunOptions, run_pipeline
from pipeline.errors import InkRemovalError, RunCancelled
from pipeline.models.restorers import missing_weights
from pipeline.revise import revise_output

logger = logging.getLogger(__name__)

# The message of a run cancelled while running, before and after the worker stopped it.
_STOPPING_SUFFIX = "; stopping at the next step"
_STOPPED_SUFFIX = "; stopped"


_OPTION_TYPES: dict[type, tuple[type, ...]] = {
    bool: (bool,),
    int: (int,),
    float: (int, float),
    str: (str,),
}


def _settable_options() -> dict[str, type]:
    """Return the RunOptions fields a client may set: those with a scalar default."""
    settable = {}
    for field in dataclasses.fields(RunOptions):
        if field.default is not dataclasses.MISSING and type(field.default) in _OPTION_TYPES:
            settable[field.name] = type(field.default)
    return settable


def run_options_validate(options: dict[str, Any]) -> dict[str, Any]:
    """Check that `options` are scalar RunOptions fields of the right type; return them.

    Raises ApplicationError naming the unknown or invalid option and what is expected.
    """
    if not isinstance(options, dict):
        raise ApplicationError("Run options must be a JSON object.", code="invalid_options")
    settable = _settable_options()
    unknown = sorted(set(options) - set(settable))
    if unknown:
        raise ApplicationError(
            f"Unknown run option(s) {', '.join(unknown)}; "
            f"valid options are {', '.join(sorted(settable))}.",
            code="invalid_options",
        )
    for name, value in options.items():
        expected = settable[name]
        # bool is a subclass of int, so a number option must reject True and False itself.
        wrong_bool = isinstance(value, bool) and expected is not bool
        if wrong_bool or not isinstance(value, _OPTION_TYPES[expected]):
            raise ApplicationError(
                f"Run option {name} must be of type {expected.__name__}, got {value!r}.",
                code="invalid_options",
            )
    try:
        run_options = RunOptions(**options)
    except (TypeError, ValueError) as error:
        raise ApplicationError(f"Invalid run options: {error}", code="invalid_options") from error
    restore_method_check(run_options.restore_method)
    return options


def restore_method_check(method: str) -> None:
    """Raise ApplicationError when the weights that ``method`` needs are not installed.

    A run with missing weights would fail in the worker, so rejecting it here names the
    missing files at once.
    """
    missing = missing_weights(method)
    if missing:
        names = ", ".join(path.name for path in missing)
        raise ApplicationError(
            f"Restoration method {method} is not available on this server: its model "
            f"weights ({names}) are not installed. Choose another method, or ask an "
            "administrator to run `make weights`.",
            code="method_unavailable",
        )


def _run_output_dir(run: PipelineRun) -> Path:
    return storage_root() / "outputs" / f"slide-{run.slide_id}" / f"run-{run.pk}"


def _run_enqueue(run: PipelineRun) -> None:
    """Queue the run's job; a run that cannot be queued is marked failed with the reason."""
    try:
        job_enqueue(
            queue=settings.INKWEB_GPU_QUEUE,
            func="inkweb.runs.jobs.run_execute_job",
            job_id=run.rq_job_id,
            timeout_s=settings.INKWEB_RUN_TIMEOUT_SECONDS,
            run_id=run.pk,
        )
    except RedisError as error:
        logger.error("Run %s of slide %s could not be queued: %s", run.pk, run.slide_id, error)
        _finish_recorded(
            run,
            from_statuses=(PipelineRun.Status.QUEUED,),
            status=PipelineRun.Status.FAILED,
            error=f"The run could not be queued: Redis is unreachable ({error}). Retry later.",
        )
        return
    run_broadcast(run)


def run_create(
    *,
    slide: Slide,
    requested_by: AbstractBaseUser | None,
    options: dict[str, Any] | None = None,
    retry_of: PipelineRun | None = None,
    parent: PipelineRun | None = None,
    corrections: list[dict[str, Any]] | None = None,
) -> PipelineRun:
    """Create a queued run of `slide` and put it on the GPU queue once committed.

    With `parent`, the run is a revision that applies `corrections` (validated by
    inkweb.runs.revisions) to the parent's output. Raises ConflictError when the slide is
    not ingested yet, already has an active run, or has a newer succeeded run than `parent`.
    """
    if slide.ingest_status != Slide.IngestStatus.READY:
        raise ConflictError(
            f"Slide {slide.pk} is not ready for processing (ingest status "
            f"{slide.ingest_status}); wait for the ingest to finish.",
            code="slide_not_ready",
        )
    options = run_options_validate(options or {})
    if parent is not None:
        _revision_parent_check(parent)
    if PipelineRun.objects.filter(slide=slide, status__in=PipelineRun.ACTIVE_STATUSES).exists():
        raise ConflictError(
            f"Slide {slide.pk} already has a queued or running run; wait for it or cancel it.",
            code="run_already_active",
        )

    run = PipelineRun(
        slide=slide,
        requested_by=requested_by,
        options=options,
        retry_of=retry_of,
        kind=PipelineRun.Kind.FULL if parent is None else PipelineRun.Kind.REVISION,
        parent=parent,
        corrections=corrections or [],
    )
    run.full_clean()
    try:
        with transaction.atomic():
            run.save()
            run.rq_job_id = f"run-{run.pk}"
            run.save(update_fields=["rq_job_id"])
            _audit_run_request(run, requested_by=requested_by)
            transaction.on_commit(lambda: _run_enqueue(run))
    except IntegrityError:
        # A concurrent request created an active run between the check and the insert.
        raise ConflictError(
            f"Slide {slide.pk} already has a queued or running run.", code="run_already_active"
        ) from None

    logger.info(
        "Run %s of slide %s created by user %s", run.pk, slide.pk, getattr(requested_by, "pk", None)
    )
    return run


def _revision_parent_check(parent: PipelineRun) -> None:
    """Raise ConflictError unless `parent` is its slide's newest succeeded run.

    A revision becomes the slide's newest output, so one built on an older run would
    silently drop every newer output and the decisions recorded on them.
    """
    latest = run_latest_succeeded(slide_id=parent.slide_id)
    if latest is not None and latest.pk != parent.pk:
        raise ConflictError(
            f"Run {parent.pk} is not the newest succeeded run of slide {parent.slide_id}; "
            f"run {latest.pk} is. Revisions build on the newest output, so correct regions "
            f"of run {latest.pk} instead.",
            code="parent_not_latest",
        )


def _audit_run_request(run: PipelineRun, *, requested_by: AbstractBaseUser | None) -> None:
    """Record the creation of `run`: a retry, a region correction (revision) or a request."""
    actor_name = requested_by.get_username() if requested_by is not None else "the system"
    details = {"options": run.options, "retry_of": run.retry_of_id}
    if run.retry_of_id is not None:
        action = AuditEvent.Action.RUN_RETRY
        summary = (
            f"{actor_name} retried run {run.retry_of_id} of slide {run.slide_id} as run {run.pk}."
        )
    elif run.kind == PipelineRun.Kind.REVISION:
        action = AuditEvent.Action.REGION_CORRECTION
        summary = (
            f"{actor_name} corrected {len(run.corrections)} region(s) of run {run.parent_id} "
            f"of slide {run.slide_id} as run {run.pk}."
        )
        details.update(parent=run.parent_id, corrections=run.corrections)
    else:
        action = AuditEvent.Action.RUN_CREATE
        summary = f"{actor_name} requested run {run.pk} of slide {run.slide_id}."
    audit_record(
        actor=requested_by,
        action=action,
        target_type="run",
        target_id=run.pk,
        summary=summary,
        slide_id=run.slide_id,
        details=details,
    )


def run_cancel(*, run: PipelineRun, cancelled_by: AbstractBaseUser) -> PipelineRun:
    """Cancel a queued or running run.

    A queued run's job is removed from the queue. A running run gets a Redis flag that its
    worker's progress callback turns into RunCancelled. The row's status is "cancelled" at once.
    """
    cancel_flag_set(run_id=run.pk)
    now = timezone.now()
    with transaction.atomic():
        was_queued = PipelineRun.objects.filter(
            pk=run.pk, status=PipelineRun.Status.QUEUED
        ).update(
            status=PipelineRun.Status.CANCELLED,
            message=f"Cancelled by {cancelled_by.get_username()} before it started.",
            finished_at=now,
            updated_at=now,
        )
        was_running = 0
        if not was_queued:
            was_running = PipelineRun.objects.filter(
                pk=run.pk, status=PipelineRun.Status.RUNNING
            ).update(
                status=PipelineRun.Status.CANCELLED,
                message=f"Cancelled by {cancelled_by.get_username()}{_STOPPING_SUFFIX}",
                finished_at=now,
                updated_at=now,
            )
        if was_queued or was_running:
            audit_record(
                actor=cancelled_by,
                action=AuditEvent.Action.RUN_CANCEL,
                target_type="run",
                target_id=run.pk,
                summary=(
                    f"{cancelled_by.get_username()} cancelled run {run.pk} of slide "
                    f"{run.slide_id} while it was {'queued' if was_queued else 'running'}."
                ),
                slide_id=run.slide_id,
                details={"was": "queued" if was_queued else "running"},
            )

    run.refresh_from_db()
    if not (was_queued or was_running):
        cancel_flag_clear(run_id=run.pk)
        raise ConflictError(
            f"Run {run.pk} has status {run.status}; only queued or running runs can be cancelled.",
            code="run_not_active",
        )

    if was_queued and run.rq_job_id:
        job_cancel(job_id=run.rq_job_id)
    logger.info(
        "Run %s of slide %s cancelled by user %s while %s",
        run.pk,
        run.slide_id,
        cancelled_by.pk,
        "queued" if was_queued else "running",
    )
    run_broadcast(run)
    return run


def run_retry(*, run: PipelineRun, requested_by: AbstractBaseUser) -> PipelineRun:
    """Create a new run with the same options as a failed or cancelled one."""
    if run.status not in PipelineRun.RETRYABLE_STATUSES:
        raise ConflictError(
            f"Run {run.pk} has status {run.status}; only failed or cancelled runs can be retried.",
            code="run_not_retryable",
        )
    if run.kind == PipelineRun.Kind.REVISION and run.parent is None:
        raise ConflictError(
            f"Run {run.pk} is a revision whose parent run no longer exists; it cannot be retried.",
            code="run_not_retryable",
        )
    logger.info("Retrying run %s of slide %s", run.pk, run.slide_id)
    return run_create(
        slide=run.slide,
        requested_by=requested_by,
        options=run.options,
        retry_of=run,
        parent=run.parent,
        corrections=run.corrections,
    )


def _json_safe(value: Any) -> Any:
    """Replace NaN and infinities, which PostgreSQL's jsonb rejects, with None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def _finish(run_id: int, *, from_statuses: tuple[str, ...], **fields: Any) -> int:
    now = timezone.now()
    return PipelineRun.objects.filter(pk=run_id, status__in=from_statuses).update(
        finished_at=now, updated_at=now, **fields
    )


def _finish_recorded(
    run: PipelineRun, *, from_statuses: tuple[str, ...], status: str, **fields: Any
) -> int:
    """Finish the run like `_finish` and, when a row changed, record it in the audit log."""
    with transaction.atomic():
        changed = _finish(run.pk, from_statuses=from_statuses, status=status, **fields)
        if changed:
            details = {"status": str(status), "error": fields.get("error", "")}
            if "restored_sha256" in fields:
                details["restored_sha256"] = fields["restored_sha256"]
            audit_record(
                actor=None,
                action=AuditEvent.Action.RUN_FINISH,
                target_type="run",
                target_id=run.pk,
                summary=f"Run {run.pk} of slide {run.slide_id} finished as {status}.",
                slide_id=run.slide_id,
                details=details,
            )
    return changed


def _output_path(report: dict[str, Any], key: str, default: Path) -> Path:
    recorded = report.get("outputs", {}).get(key, {}).get("path")
    path = Path(recorded) if recorded else default
    return path if path.is_absolute() else default.parent / path


def run_execute(
    *, run_id: int, device: str, load_models: Callable[[str], Any] | None = None
) -> PipelineRun:
    """Execute a queued run in this process on `device`.

    `load_models(device)` returns the pipeline models (a worker passes its resident ones);
    without it the pipeline loads its defaults. Claims the run (queued to running) so that
    a cancelled or already claimed run is skipped. Pipeline errors, including missing model
    weights, mark the run failed with the message. Any other exception is recorded, then
    re-raised so that the worker logs it and RQ keeps the failed job.
    """
    now = timezone.now()
    claimed = PipelineRun.objects.filter(pk=run_id, status=PipelineRun.Status.QUEUED).update(
        status=PipelineRun.Status.RUNNING,
        started_at=now,
        updated_at=now,
        device=device,
        progress=0.0,
        stage="starting",
        message="",
        error="",
    )
    run = PipelineRun.objects.select_related("slide").get(pk=run_id)
    if not claimed:
        logger.info("Run %s has status %s, not queued; skipping it", run_id, run.status)
        return run

    slide = run.slide
    run_broadcast(run)
    output_dir = _run_output_dir(run)
    output_dir.mkdir(parents=True, exist_ok=True)
    reporter = RunProgressReporter(
        run_id=run.pk, slide_id=slide.pk, interval_s=settings.INKWEB_PROGRESS_INTERVAL_SECONDS
    )
    logger.info("Run %s of slide %s started on %s", run.pk, slide.pk, device)

    try:
        models = load_models(device) if load_models is not None else None
        report = _pipeline_execute(run, output_dir, device=device, models=models, progress=reporter)
    except RunCancelled:
        _finish_recorded(
            run,
            from_statuses=(PipelineRun.Status.RUNNING, PipelineRun.Status.CANCELLED),
            status=PipelineRun.Status.CANCELLED,
            message=Replace("message", Value(_STOPPING_SUFFIX), Value(_STOPPED_SUFFIX)),
        )
        shutil.rmtree(output_dir, ignore_errors=True)
        cancel_flag_clear(run_id=run.pk)
        logger.info("Run %s of slide %s stopped after cancellation", run.pk, slide.pk)
        return _reload_and_broadcast(run.pk)
    except InkRemovalError as error:
        _finish_recorded(
            run,
            from_statuses=(PipelineRun.Status.RUNNING,),
            status=PipelineRun.Status.FAILED,
            error=str(error) or type(error).__name__,
        )
        shutil.rmtree(output_dir, ignore_errors=True)
        logger.warning("Run %s of slide %s failed: %s", run.pk, slide.pk, error)
        return _reload_and_broadcast(run.pk)
    except BaseException as error:
        _finish_recorded(
            run,
            from_statuses=(PipelineRun.Status.RUNNING,),
            status=PipelineRun.Status.FAILED,
            error=(
                f"Unexpected error ({type(error).__name__}: {error}); "
                "the worker log has the traceback. Retry, or report it if it repeats."
            ),
        )
        shutil.rmtree(output_dir, ignore_errors=True)
        logger.exception("Run %s of slide %s crashed", run.pk, slide.pk)
        _reload_and_broadcast(run.pk)
        raise

    report = _json_safe(json.loads(json.dumps(report, default=str)))
    outputs = report.get("outputs", {})
    restored = _output_path(report, "restored", output_dir / "restored.tiff")
    mask = _output_path(report, "ink_mask", output_dir / "ink-mask.tiff")
    succeeded = _finish_recorded(
        run,
        from_statuses=(PipelineRun.Status.RUNNING,),
        status=PipelineRun.Status.SUCCEEDED,
        progress=1.0,
        stage="done",
        message=(
            "Corrections applied."
            if run.kind == PipelineRun.Kind.REVISION
            else "Ink removal finished."
        ),
        report=report,
        ink_found=bool(report.get("ink_found")),
        output_dir=storage_relative(output_dir),
        restored_path=storage_relative(restored),
        mask_path=storage_relative(mask),
        report_path=storage_relative(output_dir / "report.json"),
        restored_sha256=str(outputs.get("restored", {}).get("sha256", ""))[:64],
        mask_sha256=str(outputs.get("ink_mask", {}).get("sha256", ""))[:64],
    )
    if not succeeded:
        # Cancelled after the pipeline's last progress step: drop the outputs, as for a cancel.
        shutil.rmtree(output_dir, ignore_errors=True)
        logger.info(
            "Run %s of slide %s finished but was cancelled; outputs removed", run.pk, slide.pk
        )
    else:
        logger.info(
            "Run %s of slide %s succeeded: ink found %s", run.pk, slide.pk, report.get("ink_found")
        )
    cancel_flag_clear(run_id=run.pk)
    return _reload_and_broadcast(run.pk)


def _pipeline_execute(
    run: PipelineRun, output_dir: Path, *, device: str, models: Any, progress: RunProgressReporter
) -> dict[str, Any]:
    """Run the pipeline for a full run, or apply a revision's corrections to its parent's output."""
    slide_path = storage_absolute(run.slide.original_path)
    options = RunOptions(**run.options)
    if run.kind != PipelineRun.Kind.REVISION:
        return run_pipeline(
            slide_path, output_dir, device=device, options=options, progress=progress, models=models
        )
    if run.parent is None or not run.parent.output_dir:
        raise InkRemovalError(
            f"the parent output of revision {run.pk} no longer exists; start a new full run"
        )
    return revise_output(
        slide_path,
        storage_absolute(run.parent.output_dir),
        output_dir,
        run.corrections,
        options=options,
        progress=progress,
        device=device,
        models=models,
    )


def _reload_and_broadcast(run_id: int) -> PipelineRun:
    run = PipelineRun.objects.get(pk=run_id)
    run_broadcast(run)
    return run
