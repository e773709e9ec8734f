"""Pipeline runs: enqueue, cancel, retry, progress reporting and execution in a worker."""

from __future__ import annotations

import pytest
from rq import Queue

from inkweb.core.exceptions import ApplicationError, ConflictError
from inkweb.core.queues import queue_get
from inkweb.core.redis import redis_connection
from inkweb.core.storage import storage_absolute
from inkweb.runs import services as run_services
from inkweb.runs.cancellation import cancel_flag_is_set, cancel_flag_set
from inkweb.runs.models import PipelineRun
from inkweb.runs.progress import RunProgressReporter
from inkweb.runs.reports import run_report_summary
from inkweb.runs.services import run_cancel, run_create, run_execute, run_retry
from inkweb.slides.models import Slide
from pipeline import ProgressEvent
from pipeline.errors import InkRemovalError, RunCancelled
from tests.web.conftest import client_for


def _create(slide, user, capture) -> PipelineRun:
    with capture(execute=True):
        return run_create(slide=slide, requested_by=user)


@pytest.mark.django_db
def test_create_enqueues_gpu_job(ready_slide, uploader, django_capture_on_commit_callbacks):
    run = _create(ready_slide, uploader, django_capture_on_commit_callbacks)
    assert run.status == PipelineRun.Status.QUEUED
    assert run.rq_job_id == f"run-{run.pk}"
    assert run.rq_job_id in queue_get("gpu").job_ids


@pytest.mark.django_db
def test_second_active_run_conflicts(ready_slide, uploader, django_capture_on_commit_callbacks):
    _create(ready_slide, uploader, django_capture_on_commit_callbacks)
    with pytest.raises(ConflictError) as error:
        run_create(slide=ready_slide, requested_by=uploader)
    assert error.value.code == "run_already_active"


@pytest.mark.django_db
def test_run_needs_ingested_slide(ready_slide, uploader):
    Slide.objects.filter(pk=ready_slide.pk).update(ingest_status=Slide.IngestStatus.PENDING)
    ready_slide.refresh_from_db()
    with pytest.raises(ConflictError, match="not ready"):
        run_create(slide=ready_slide, requested_by=uploader)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"no_such_option": 1}, "Unknown run option"),
        ({"tile_size": "big"}, "must be of type int"),
        ({"tile_size": True}, "must be of type int"),
        ({"tile_size": 50}, "tile_size"),
        ({"colour_rules": {}}, "Unknown run option"),
    ],
)
@pytest.mark.django_db
def test_invalid_options_rejected(ready_slide, uploader, options, fragment):
    with pytest.raises(ApplicationError, match=fragment):
        run_create(slide=ready_slide, requested_by=uploader, options=options)
    assert PipelineRun.objects.count() == 0


@pytest.mark.django_db
def test_cancel_queued_removes_job(ready_slide, uploader, django_capture_on_commit_callbacks):
    run = _create(ready_slide, uploader, django_capture_on_commit_callbacks)
    cancelled = run_cancel(run=run, cancelled_by=uploader)

    assert cancelled.status == PipelineRun.Status.CANCELLED
    assert cancelled.finished_at is not None
    assert run.rq_job_id not in queue_get("gpu").job_ids
    # A worker that still dequeues it must skip it.
    skipped = run_execute(run_id=run.pk, device="cpu")
    assert skipped.status == PipelineRun.Status.CANCELLED


@pytest.mark.django_db
def test_cancel_running_sets_flag(ready_slide, uploader):
    run = PipelineRun.objects.create(
        slide=ready_slide, requested_by=uploader, status=PipelineRun.Status.RUNNING
    )
    cancelled = run_cancel(run=run, cancelled_by=uploader)
    assert cancelled.status == PipelineRun.Status.CANCELLED
    assert cancel_flag_is_set(run_id=run.pk)


@pytest.mark.django_db
def test_cancel_finished_conflicts(succeeded_run, uploader):
    with pytest.raises(ConflictError) as error:
        run_cancel(run=succeeded_run, cancelled_by=uploader)
    assert error.value.code == "run_not_active"


@pytest.mark.django_db
def test_retry_failed_creates_new_run(ready_slide, uploader, django_capture_on_commit_callbacks):
    failed = PipelineRun.objects.create(
        slide=ready_slide,
        requested_by=uploader,
        status=PipelineRun.Status.FAILED,
        options={"tile_size": 256},
        error="boom",
    )
    with django_capture_on_commit_callbacks(execute=True):
        retry = run_retry(run=failed, requested_by=uploader)

    assert retry.pk != failed.pk
    assert retry.retry_of_id == failed.pk
    assert retry.options == {"tile_size": 256}
    assert retry.status == PipelineRun.Status.QUEUED
    assert retry.rq_job_id in queue_get("gpu").job_ids


@pytest.mark.django_db
def test_retry_succeeded_conflicts(succeeded_run, uploader):
    with pytest.raises(ConflictError, match="only failed or cancelled"):
        run_retry(run=succeeded_run, requested_by=uploader)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.django_db
def test_reporter_throttles_writes(ready_slide, uploader):
    run = PipelineRun.objects.create(
        slide=ready_slide, requested_by=uploader, status=PipelineRun.Status.RUNNING
    )
    clock = FakeClock()
    reporter = RunProgressReporter(
        run_id=run.pk, slide_id=ready_slide.pk, interval_s=0.5, clock=clock
    )

    reporter(ProgressEvent("screen", 1, 10, "first"))
    run.refresh_from_db()
    assert run.progress == pytest.approx(ProgressEvent("screen", 1, 10, "first").fraction)
    assert run.message == "first"

    clock.now = 0.2
    reporter(ProgressEvent("screen", 5, 10, "too soon"))
    run.refresh_from_db()
    assert run.message == "first"

    clock.now = 0.8
    reporter(ProgressEvent("restore", 9, 10, "later"))
    run.refresh_from_db()
    assert run.message == "later"
    assert run.stage == "restore"


@pytest.mark.django_db
def test_reporter_raises_on_cancel_flag(ready_slide, uploader):
    run = PipelineRun.objects.create(
        slide=ready_slide, requested_by=uploader, status=PipelineRun.Status.RUNNING
    )
    reporter = RunProgressReporter(run_id=run.pk, slide_id=ready_slide.pk, interval_s=0.0)
    cancel_flag_set(run_id=run.pk)
    with pytest.raises(RunCancelled):
        reporter(ProgressEvent("screen", 1, 10, ""))


@pytest.mark.django_db
def test_reporter_raises_when_row_cancelled(ready_slide, uploader):
    run = PipelineRun.objects.create(
        slide=ready_slide, requested_by=uploader, status=PipelineRun.Status.CANCELLED
    )
    reporter = RunProgressReporter(run_id=run.pk, slide_id=ready_slide.pk, interval_s=0.0)
    with pytest.raises(RunCancelled):
        reporter(ProgressEvent("screen", 1, 10, ""))


def _queued_run(slide, user) -> PipelineRun:
    return PipelineRun.objects.create(slide=slide, requested_by=user)


@pytest.mark.django_db
def test_execute_cancelled_midway_removes_outputs(ready_slide, uploader, monkeypatch):
    run = _queued_run(ready_slide, uploader)

    def fake_pipeline(slide_path, output_dir, *, device, options, progress, models):
        (output_dir / "restored.tiff.partial").write_bytes(b"partial")
        progress(ProgressEvent("restore", 1, 4, ""))
        cancel_flag_set(run_id=run.pk)
        progress(ProgressEvent("restore", 2, 4, ""))
        raise AssertionError("the reporter should have raised RunCancelled")

    monkeypatch.setattr(run_services, "run_pipeline", fake_pipeline)
    monkeypatch.setattr("django.conf.settings.INKWEB_PROGRESS_INTERVAL_SECONDS", 0.0)
    result = run_execute(run_id=run.pk, device="cpu")

    assert result.status == PipelineRun.Status.CANCELLED
    assert not (storage_absolute("outputs") / f"slide-{ready_slide.pk}" / f"run-{run.pk}").exists()
    assert not cancel_flag_is_set(run_id=run.pk)


@pytest.mark.django_db
def test_cancelled_run_message_says_stopped(ready_slide, uploader, monkeypatch):
    run = _queued_run(ready_slide, uploader)

    def fake_pipeline(slide_path, output_dir, *, device, options, progress, models):
        run_cancel(run=PipelineRun.objects.get(pk=run.pk), cancelled_by=uploader)
        progress(ProgressEvent("restore", 2, 4, ""))
        raise AssertionError("the reporter should have raised RunCancelled")

    monkeypatch.setattr(run_services, "run_pipeline", fake_pipeline)
    monkeypatch.setattr("django.conf.settings.INKWEB_PROGRESS_INTERVAL_SECONDS", 0.0)
    result = run_execute(run_id=run.pk, device="cpu")

    assert result.status == PipelineRun.Status.CANCELLED
    assert result.message == f"Cancelled by {uploader.get_username()}; stopped"


@pytest.mark.django_db
def test_execute_pipeline_error_marks_failed(ready_slide, uploader, monkeypatch):
    run = _queued_run(ready_slide, uploader)

    def failing_pipeline(*args, **kwargs):
        raise InkRemovalError("classifier weights missing; run `inkremove train classifier`")

    monkeypatch.setattr(run_services, "run_pipeline", failing_pipeline)
    result = run_execute(run_id=run.pk, device="cpu")

    assert result.status == PipelineRun.Status.FAILED
    assert "classifier weights missing" in result.error
    assert result.finished_at is not None


@pytest.mark.django_db
def test_execute_unexpected_error_recorded_and_raised(ready_slide, uploader, monkeypatch):
    run = _queued_run(ready_slide, uploader)
    monkeypatch.setattr(run_services, "run_pipeline", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        run_execute(run_id=run.pk, device="cpu")
    run.refresh_from_db()
    assert run.status == PipelineRun.Status.FAILED
    assert "ZeroDivisionError" in run.error


@pytest.mark.django_db
def test_execute_real_pipeline_succeeds(ready_slide, uploader):
    run = _queued_run(ready_slide, uploader)
    result = run_execute(run_id=run.pk, device="cpu")

    assert result.status == PipelineRun.Status.SUCCEEDED, result.error
    assert result.progress == 1.0
    assert result.device == "cpu"
    assert result.report["input"]["sha256_before"] == ready_slide.sha256
    assert storage_absolute(result.restored_path).is_file()
    assert storage_absolute(result.mask_path).is_file()
    assert result.ink_found is not None


@pytest.mark.django_db
def test_resident_worker_runs_jobs_in_process(
    ready_slide, uploader, monkeypatch, django_capture_on_commit_callbacks
):
    from inkweb import worker as worker_module

    loads = []
    monkeypatch.setattr(worker_module, "resident_models", lambda device=None: loads.append(device))
    monkeypatch.setattr(worker_module, "worker_device", lambda: "cpu")
    # The test's transaction must survive; a real worker closes stale connections here.
    monkeypatch.setattr(worker_module, "close_old_connections", lambda: None)

    def fake_pipeline(slide_path, output_dir, **kwargs):
        raise InkRemovalError("stopped by the test pipeline")

    monkeypatch.setattr(run_services, "run_pipeline", fake_pipeline)
    first = _create(ready_slide, uploader, django_capture_on_commit_callbacks)
    queue = Queue("gpu", connection=redis_connection())
    worker = worker_module.ResidentWorker([queue], connection=redis_connection())
    worker.work(burst=True)

    first.refresh_from_db()
    assert first.status == PipelineRun.Status.FAILED
    assert first.error == "stopped by the test pipeline"
    # work() preloads once, and the job's request returns the process's loaded models.
    assert loads == ["cpu", "cpu"]


@pytest.mark.django_db
def test_run_api_flow(ready_slide, uploader, reviewer, django_capture_on_commit_callbacks):
    client = client_for(uploader)
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(f"/api/slides/{ready_slide.pk}/runs/", {}, format="json")
    assert created.status_code == 201, created.content
    run_id = created.json()["id"]

    assert client_for(reviewer).post(f"/api/runs/{run_id}/cancel/").status_code == 403
    cancelled = client.post(f"/api/runs/{run_id}/cancel/")
    assert cancelled.json()["status"] == "cancelled"
    again = client.post(f"/api/runs/{run_id}/cancel/")
    assert again.status_code == 409
    assert again.json()["code"] == "run_not_active"

    with django_capture_on_commit_callbacks(execute=True):
        retried = client.post(f"/api/runs/{run_id}/retry/")
    assert retried.status_code == 201
    assert retried.json()["retry_of_id"] == run_id

    listed = client.get(f"/api/runs/?slide={ready_slide.pk}&active=true").json()
    assert [run["id"] for run in listed["results"]] == [retried.json()["id"]]
    detail = client.get(f"/api/runs/{run_id}/").json()
    assert detail["report"] is None


def test_report_summary_total_not_doubled():
    summary = run_report_summary(
        {"timings_s": {"screen": 1.5, "restore": 2.0, "total": 4.0}, "tiles": {}}
    )

    assert summary["total_seconds"] == 4.0
    assert "total" not in summary["timings"]


def test_report_summary_total_from_stages():
    summary = run_report_summary({"timings_s": {"screen": 1.5, "restore": 2.0}})

    assert summary["total_seconds"] == 3.5
