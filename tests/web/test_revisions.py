"""Run revisions: validation, roles, audit, lineage, execution and the slide state after one."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image
from rest_framework.test import APIClient

from inkweb.audit.models import AuditEvent
from inkweb.core.exceptions import ApplicationError, ConflictError, ForbiddenError
from inkweb.core.queues import queue_get
from inkweb.core.storage import storage_absolute
from inkweb.reviews.services import review_record
from inkweb.runs.models import PipelineRun
from inkweb.runs.revisions import MAX_CORRECTIONS, run_revise
from inkweb.runs.selectors import run_lineage
from inkweb.runs.services import run_execute, run_retry
from inkweb.slides.selectors import slide_get
from inkweb.slides.states import SlideState
from inkweb.tiles.selectors import tile_source_resolve
from tests.web.conftest import client_for

# tcga-green-pen.png is 754 x 631 pixels.
KEEP = {"x": 200, "y": 100, "width": 150, "height": 120, "action": "keep-original"}
RESTORE = {"x": 20, "y": 30, "width": 40, "height": 50, "action": "restore"}


def _revise(run, user, corrections, capture) -> PipelineRun:
    with capture(execute=True):
        return run_revise(run=run, corrections=corrections, requested_by=user)


@pytest.mark.django_db
def test_revision_queued_with_audit(
    processed_run, reviewer, django_capture_on_commit_callbacks
):
    revision = _revise(
        processed_run, reviewer, [KEEP, RESTORE], django_capture_on_commit_callbacks
    )

    assert revision.kind == PipelineRun.Kind.REVISION
    assert revision.parent_id == processed_run.pk
    assert revision.status == PipelineRun.Status.QUEUED
    assert revision.options == processed_run.options
    assert revision.corrections == [KEEP, dict(RESTORE, method="od")]
    assert revision.rq_job_id in queue_get("gpu").job_ids

    events = AuditEvent.objects.filter(target_type="run", target_id=revision.pk)
    assert [event.action for event in events] == [AuditEvent.Action.REGION_CORRECTION]
    event = events.get()
    assert event.actor == reviewer
    assert event.slide_id == processed_run.slide_id
    assert event.details["parent"] == processed_run.pk
    assert event.details["corrections"] == revision.corrections
    assert "2 region(s)" in event.summary


@pytest.mark.parametrize(
    ("corrections", "fragment"),
    [
        ([], "non-empty list"),
        ("everything", "non-empty list"),
        ([KEEP] * (MAX_CORRECTIONS + 1), f"at most {MAX_CORRECTIONS}"),
        ([dict(KEEP, x=700)], "does not lie inside the slide"),
        ([dict(KEEP, height=0)], "at least 1 pixel"),
        ([dict(KEEP, action="erase")], "action must be one of"),
        ([dict(RESTORE, method="magic")], "method must be one of"),
        ([dict(KEEP, method="od")], "method applies only to the restore action"),
    ],
)
@pytest.mark.django_db
def test_invalid_corrections_rejected(processed_run, reviewer, corrections, fragment):
    with pytest.raises(ApplicationError, match=fragment) as error:
        run_revise(run=processed_run, corrections=corrections, requested_by=reviewer)
    assert error.value.code == "invalid_corrections"
    assert PipelineRun.objects.count() == 1
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.REGION_CORRECTION).exists()


@pytest.mark.django_db
def test_revision_needs_reviewer(processed_run, uploader):
    with pytest.raises(ForbiddenError, match="reviewer role"):
        run_revise(run=processed_run, corrections=[KEEP], requested_by=uploader)
    assert PipelineRun.objects.count() == 1


@pytest.mark.django_db
def test_revision_needs_succeeded_parent(ready_slide, uploader, reviewer):
    failed = PipelineRun.objects.create(
        slide=ready_slide, requested_by=uploader, status=PipelineRun.Status.FAILED
    )
    with pytest.raises(ConflictError) as error:
        run_revise(run=failed, corrections=[KEEP], requested_by=reviewer)
    assert error.value.code == "run_not_succeeded"


@pytest.mark.django_db
def test_revision_needs_parent_output(succeeded_run, reviewer):
    with pytest.raises(ConflictError) as error:
        run_revise(run=succeeded_run, corrections=[KEEP], requested_by=reviewer)
    assert error.value.code == "run_output_missing"


@pytest.mark.django_db
def test_revision_needs_latest_parent(processed_run, uploader, reviewer):
    newer = PipelineRun.objects.create(
        slide=processed_run.slide, requested_by=uploader, status=PipelineRun.Status.SUCCEEDED
    )
    with pytest.raises(ConflictError) as error:
        run_revise(run=processed_run, corrections=[KEEP], requested_by=reviewer)
    assert error.value.code == "parent_not_latest"
    assert f"run {newer.pk} is" in error.value.detail

    response = client_for(reviewer).post(
        f"/api/runs/{processed_run.pk}/revisions/", {"corrections": [KEEP]}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "parent_not_latest"
    assert PipelineRun.objects.count() == 2


@pytest.mark.django_db
def test_revision_retry_needs_latest_parent(processed_run, uploader, reviewer):
    failed = PipelineRun.objects.create(
        slide=processed_run.slide,
        requested_by=reviewer,
        status=PipelineRun.Status.FAILED,
        kind=PipelineRun.Kind.REVISION,
        parent=processed_run,
        corrections=[KEEP],
    )
    PipelineRun.objects.create(
        slide=processed_run.slide, requested_by=uploader, status=PipelineRun.Status.SUCCEEDED
    )
    with pytest.raises(ConflictError) as error:
        run_retry(run=failed, requested_by=reviewer)
    assert error.value.code == "parent_not_latest"
    assert PipelineRun.objects.count() == 3


@pytest.mark.django_db
def test_revision_conflicts_with_active_run(
    processed_run, reviewer, django_capture_on_commit_callbacks
):
    _revise(processed_run, reviewer, [KEEP], django_capture_on_commit_callbacks)
    with pytest.raises(ConflictError) as error:
        run_revise(run=processed_run, corrections=[RESTORE], requested_by=reviewer)
    assert error.value.code == "run_already_active"
    assert PipelineRun.objects.count() == 2


@pytest.mark.django_db
def test_revision_api(
    processed_run, uploader, reviewer, django_capture_on_commit_callbacks
):
    url = f"/api/runs/{processed_run.pk}/revisions/"
    body = {"corrections": [KEEP]}
    assert client_for(uploader).post(url, body, format="json").status_code == 403
    assert APIClient().post(url, body, format="json").status_code == 403

    client = client_for(reviewer)
    bad_type = client.post(url, {"corrections": [dict(KEEP, x="left")]}, format="json")
    assert bad_type.status_code == 400
    assert bad_type.json()["code"] == "invalid"
    outside = client.post(url, {"corrections": [dict(KEEP, x=700)]}, format="json")
    assert outside.status_code == 400
    assert outside.json()["code"] == "invalid_corrections"
    assert "correction 1" in outside.json()["detail"]
    assert client.post(url, {"corrections": []}, format="json").status_code == 400
    zero_width = client.post(
        url, {"corrections": [KEEP, dict(KEEP, width=0)]}, format="json"
    ).json()
    assert zero_width["detail"] == (
        "corrections[1].width: Ensure this value is greater than or equal to 1."
    )
    assert zero_width["code"] == "invalid"

    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(url, body, format="json")
    assert created.status_code == 201, created.content
    revision = created.json()
    assert revision["kind"] == "revision"
    assert revision["parent_id"] == processed_run.pk
    assert revision["corrections"] == [KEEP]
    assert revision["requested_by"] == reviewer.username

    lineage = client_for(uploader).get(f"/api/runs/{revision['id']}/revisions/").json()
    assert [(run["id"], run["kind"]) for run in lineage] == [
        (processed_run.pk, "full"),
        (revision["id"], "revision"),
    ]


@pytest.mark.django_db
def test_lineage_follows_parents(processed_run, uploader):
    def child(parent, status=PipelineRun.Status.SUCCEEDED):
        return PipelineRun.objects.create(
            slide=processed_run.slide,
            requested_by=uploader,
            status=status,
            kind=PipelineRun.Kind.REVISION,
            parent=parent,
            corrections=[KEEP],
        )

    first = child(processed_run)
    second = child(first)
    sibling = child(processed_run, status=PipelineRun.Status.FAILED)
    unrelated = PipelineRun.objects.create(
        slide=processed_run.slide, requested_by=uploader, status=PipelineRun.Status.SUCCEEDED
    )

    expected = [processed_run.pk, first.pk, second.pk, sibling.pk]
    for member in (processed_run, first, second, sibling):
        assert [run.pk for run in run_lineage(run=member)] == expected
    assert [run.pk for run in run_lineage(run=unrelated)] == [unrelated.pk]


@pytest.mark.django_db
def test_revision_executes_and_becomes_latest_output(
    processed_run, uploader, reviewer, django_capture_on_commit_callbacks
):
    slide = processed_run.slide
    review_record(slide=slide, reviewer=reviewer, decision="approve", run=processed_run)
    assert slide_get(slide_id=slide.pk).state == SlideState.APPROVED

    revision = _revise(processed_run, reviewer, [KEEP], django_capture_on_commit_callbacks)
    assert slide_get(slide_id=slide.pk).state == SlideState.PROCESSING

    result = run_execute(run_id=revision.pk, device="cpu")
    assert result.status == PipelineRun.Status.SUCCEEDED, result.error
    assert result.message == "Corrections applied."
    assert result.report["kind"] == "revision"
    assert result.report["parent"]["restored_sha256"] == processed_run.restored_sha256
    assert result.report["input"]["sha256_after"] == slide.sha256
    assert result.restored_sha256 != processed_run.restored_sha256

    # The revision is the slide's newest output: tiles come from it and it awaits review.
    assert tile_source_resolve(slide_id=slide.pk, kind="restored").run_id == revision.pk
    assert slide_get(slide_id=slide.pk).state == SlideState.TO_REVIEW

    with Image.open(storage_absolute(slide.original_path)) as image:
        original = np.asarray(image.convert("RGB"))
    restored = tifffile.imread(storage_absolute(result.restored_path))
    parent = tifffile.imread(storage_absolute(processed_run.restored_path))
    rows = slice(KEEP["y"], KEEP["y"] + KEEP["height"])
    columns = slice(KEEP["x"], KEEP["x"] + KEEP["width"])
    assert np.array_equal(restored[rows, columns], original[rows, columns])
    outside = np.ones(restored.shape[:2], dtype=bool)
    outside[rows, columns] = False
    assert np.array_equal(restored[outside], parent[outside])


@pytest.mark.django_db
def test_failed_revision_retried_as_revision(
    processed_run, reviewer, monkeypatch, django_capture_on_commit_callbacks
):
    from inkweb.runs import services as run_services
    from pipeline.errors import InkRemovalError

    def failing_revise(*args, **kwargs):
        raise InkRemovalError("stopped by the test")

    monkeypatch.setattr(run_services, "revise_output", failing_revise)
    revision = _revise(processed_run, reviewer, [KEEP], django_capture_on_commit_callbacks)
    failed = run_execute(run_id=revision.pk, device="cpu")
    assert failed.status == PipelineRun.Status.FAILED
    assert failed.error == "stopped by the test"

    with django_capture_on_commit_callbacks(execute=True):
        retry = run_retry(run=failed, requested_by=reviewer)
    assert retry.kind == PipelineRun.Kind.REVISION
    assert retry.parent_id == processed_run.pk
    assert retry.retry_of_id == failed.pk
    assert retry.corrections == failed.corrections


@pytest.mark.django_db
def test_viewer_page_shows_corrections(
    processed_run, uploader, reviewer, django_capture_on_commit_callbacks
):
    revision = _revise(processed_run, reviewer, [KEEP], django_capture_on_commit_callbacks)
    page = client_for(reviewer).get(f"/slides/{processed_run.slide_id}/").content.decode()
    assert 'id="correct-start"' in page
    assert 'id="correction-form"' in page
    assert "inkweb/js/corrections.js" in page
    assert f'<li data-run-id="{revision.pk}" data-kind="revision"' in page
    assert f"revision of #{processed_run.pk}" in page

    uploader_page = client_for(uploader).get(f"/slides/{processed_run.slide_id}/").content.decode()
    assert 'id="correct-start"' not in uploader_page
    assert 'id="revisions-panel"' in uploader_page


def test_revise_with_a_method_without_weights_is_refused(monkeypatch, tmp_path):
    from inkweb.runs import services

    monkeypatch.setattr(services, "missing_weights",
                        lambda method: [tmp_path / "paired-unet.pt"] if method == "paired" else [])
    with pytest.raises(ApplicationError, match=r"paired-unet\.pt") as caught:
        services.restore_method_check("paired")
    assert caught.value.code == "method_unavailable"
    services.restore_method_check("od")
