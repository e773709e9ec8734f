"""Audit log: rows written by every audited action, filters, the API, CSV export and page."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client
from django.utils import timezone

from inkweb.audit.models import AuditEvent, AuditEventImmutableError
from inkweb.audit.selectors import audit_event_batches, audit_event_list
from inkweb.audit.services import audit_record
from inkweb.reviews.services import comment_create, review_record
from inkweb.runs import services as run_services
from inkweb.runs.models import PipelineRun
from inkweb.runs.services import run_cancel, run_create, run_execute, run_retry
from inkweb.slides.services import slide_delete, slide_import, slide_upload
from pipeline.errors import InkRemovalError
from tests.web.conftest import client_for

Action = AuditEvent.Action


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


# ---------------------------------------------------------------- rows per action


@pytest.mark.django_db
def test_import_recorded(ready_slide, uploader):
    [event] = _events(Action.SLIDE_IMPORT)
    assert event.actor_id == uploader.pk
    assert event.actor_name == "uma"
    assert event.target_type == "slide"
    assert event.target_id == ready_slide.pk
    assert event.slide_id == ready_slide.pk
    assert event.details["sha256"] == ready_slide.sha256
    assert "tcga-green-pen.png" in event.summary


@pytest.mark.django_db
def test_upload_recorded(uploader, green_pen_path, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile(green_pen_path.name, green_pen_path.read_bytes())
    with django_capture_on_commit_callbacks(execute=False):
        slide = slide_upload(uploaded_file=upload, uploaded_by=uploader)
    [event] = _events(Action.SLIDE_UPLOAD)
    assert event.target_id == slide.pk
    assert event.actor_name == "uma"
    assert event.details["size_bytes"] == green_pen_path.stat().st_size


@pytest.mark.django_db
def test_rejected_upload_not_recorded(uploader, shared_data):
    from inkweb.slides.errors import SlideRejectedError

    with pytest.raises(SlideRejectedError):
        slide_import(path=shared_data / "README.md", imported_by=uploader)
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_delete_recorded(ready_slide, uploader):
    slide_id = ready_slide.pk
    slide_delete(slide=ready_slide, deleted_by=uploader)
    [event] = _events(Action.SLIDE_DELETE)
    assert event.target_id == slide_id
    assert event.details["slide_id"] == slide_id
    # The import row survives the slide, with the link to it cleared.
    [imported] = _events(Action.SLIDE_IMPORT)
    assert imported.slide_id is None
    assert imported.target_id == slide_id


@pytest.mark.django_db
def test_run_create_cancel_retry_recorded(
    ready_slide, uploader, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = run_create(slide=ready_slide, requested_by=uploader, options={"tile_size": 256})
    run_cancel(run=run, cancelled_by=uploader)
    with django_capture_on_commit_callbacks(execute=True):
        retry = run_retry(run=PipelineRun.objects.get(pk=run.pk), requested_by=uploader)

    [created] = _events(Action.RUN_CREATE)
    assert created.target_id == run.pk
    assert created.details["options"] == {"tile_size": 256}
    [cancelled] = _events(Action.RUN_CANCEL)
    assert cancelled.target_id == run.pk
    assert cancelled.details == {"was": "queued"}
    [retried] = _events(Action.RUN_RETRY)
    assert retried.target_id == retry.pk
    assert retried.details["retry_of"] == run.pk
    assert {e.actor_name for e in (created, cancelled, retried)} == {"uma"}
    assert {e.slide_id for e in (created, cancelled, retried)} == {ready_slide.pk}


@pytest.mark.django_db
def test_failed_cancel_not_recorded(succeeded_run, uploader):
    from inkweb.core.exceptions import ConflictError

    with pytest.raises(ConflictError):
        run_cancel(run=succeeded_run, cancelled_by=uploader)
    assert not _events(Action.RUN_CANCEL)


def _queued_run(slide, user) -> PipelineRun:
    return PipelineRun.objects.create(slide=slide, requested_by=user, rq_job_id="test")


@pytest.mark.django_db
def test_run_finish_recorded(ready_slide, uploader, monkeypatch):
    succeeded = _queued_run(ready_slide, uploader)
    report = {"ink_found": True, "outputs": {"restored": {"sha256": "c" * 64}}}
    monkeypatch.setattr(run_services, "run_pipeline", lambda *args, **kwargs: report)
    assert run_execute(run_id=succeeded.pk, device="cpu").status == "succeeded"

    failed = _queued_run(ready_slide, uploader)

    def failing_pipeline(*args, **kwargs):
        raise InkRemovalError("weights missing")

    monkeypatch.setattr(run_services, "run_pipeline", failing_pipeline)
    assert run_execute(run_id=failed.pk, device="cpu").status == "failed"

    first, second = _events(Action.RUN_FINISH)
    assert (first.target_id, first.details["status"]) == (succeeded.pk, "succeeded")
    assert first.details["restored_sha256"] == "c" * 64
    assert first.actor is None
    assert first.actor_name == ""
    assert (second.target_id, second.details["status"]) == (failed.pk, "failed")
    assert second.details["error"] == "weights missing"


@pytest.mark.django_db
def test_decision_and_comment_recorded(succeeded_run, reviewer):
    PipelineRun.objects.filter(pk=succeeded_run.pk).update(restored_sha256="d" * 64)
    review = review_record(
        slide=succeeded_run.slide, reviewer=reviewer, decision="rework", note="redo"
    )
    comment = comment_create(slide=succeeded_run.slide, author=reviewer, x=5, y=6, text="here")

    [decided] = _events(Action.REVIEW_DECISION)
    assert decided.target_type == "review"
    assert decided.target_id == review.pk
    assert decided.details == {
        "decision": "rework",
        "run_id": succeeded_run.pk,
        "output_sha256": "d" * 64,
        "note": "redo",
    }
    [commented] = _events(Action.COMMENT_CREATE)
    assert commented.target_id == comment.pk
    assert commented.details["text"] == "here"
    assert commented.actor_name == "rita"


@pytest.mark.django_db
def test_audit_rows_append_only(ready_slide):
    event = AuditEvent.objects.get()
    event.summary = "edited"
    with pytest.raises(AuditEventImmutableError):
        event.save()
    with pytest.raises(AuditEventImmutableError):
        event.delete()
    with pytest.raises(AuditEventImmutableError):
        AuditEvent.objects.update(summary="edited")
    with pytest.raises(AuditEventImmutableError):
        AuditEvent.objects.all().delete()


# ---------------------------------------------------------------- filters


@pytest.fixture
def audit_rows(uploader, reviewer, ready_slide):
    """Import row of ready_slide plus four events with set times, actors and slides."""
    rows = [
        (reviewer, Action.REVIEW_DECISION, ready_slide.pk, 3),
        (reviewer, Action.COMMENT_CREATE, ready_slide.pk, 2),
        (uploader, Action.RUN_CREATE, None, 1),
        (None, Action.RUN_FINISH, ready_slide.pk, 0),
    ]
    events = []
    for actor, action, slide_id, days_ago in rows:
        event = audit_record(
            actor=actor,
            action=action,
            target_type="test",
            target_id=days_ago,
            summary=f"{action} {days_ago} days ago",
            slide_id=slide_id,
        )
        # created_at is set on insert; the test moves it back with a plain SQL update,
        # which the append-only queryset would refuse.
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE audit_auditevent SET created_at = %s WHERE id = %s",
                [timezone.now() - timedelta(days=days_ago), event.pk],
            )
        events.append(event)
    return events


@pytest.mark.django_db
def test_filters_select_rows(audit_rows, ready_slide):
    today = timezone.localdate()

    def ids(**filters):
        events = audit_event_list(**filters)
        return [event.target_id for event in events if event.target_type == "test"]

    assert ids() == [0, 1, 2, 3]
    assert ids(action=Action.COMMENT_CREATE) == [2]
    assert ids(actor="RITA") == [2, 3]
    assert ids(slide_id=ready_slide.pk) == [0, 2, 3]
    assert ids(date_from=today - timedelta(days=2)) == [0, 1, 2]
    assert ids(date_to=today - timedelta(days=1)) == [1, 2, 3]
    assert ids(date_from=today - timedelta(days=2), date_to=today - timedelta(days=2)) == [2]
    assert ids(actor="rita", slide_id=ready_slide.pk, action=Action.REVIEW_DECISION) == [3]


@pytest.mark.django_db
def test_batches_cover_all_rows(audit_rows):
    events = audit_event_list()
    batches = list(audit_event_batches(events, batch_size=2))
    assert [len(batch) for batch in batches] == [2, 2, 1]
    flattened = [event.pk for batch in batches for event in batch]
    assert flattened == [event.pk for event in events]


@pytest.mark.django_db
def test_audit_api_filters(audit_rows, reviewer, ready_slide, django_assert_num_queries):
    client = client_for(reviewer)
    # Session, user, the user's groups for the role check, then one COUNT and one SELECT.
    with django_assert_num_queries(5):
        body = client.get("/api/audit/?limit=2").json()
    assert body["count"] == 5
    assert len(body["results"]) == 2
    assert body["next"] is not None

    filtered = client.get(f"/api/audit/?actor=rita&slide={ready_slide.pk}").json()
    assert [row["action"] for row in filtered["results"]] == ["comment.create", "review.decision"]
    assert filtered["results"][0]["actor"] == "rita"

    invalid = client.get("/api/audit/?date_from=2026-02-10&date_to=2026-02-01")
    assert invalid.status_code == 400
    assert "date_to" in invalid.json()["fields"]
    assert client.get("/api/audit/?action=nonsense").status_code == 400


@pytest.mark.django_db
def test_audit_needs_reviewer(uploader):
    response = client_for(uploader).get("/api/audit/")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert client_for(uploader).get("/api/audit/export.csv").status_code == 403

    page = Client()
    page.force_login(uploader)
    assert page.get("/audit/").status_code == 403


def _export(user, query: str) -> tuple[int, str, str]:
    async def fetch():
        client = AsyncClient()
        await client.aforce_login(user)
        response = await client.get(f"/api/audit/export.csv{query}")
        body = b"".join([chunk async for chunk in response.streaming_content])
        return response.status_code, response["Content-Type"], body.decode()

    return async_to_sync(fetch)()


@pytest.mark.django_db
def test_csv_export_filtered(audit_rows, reviewer, ready_slide):
    status, content_type, text = _export(reviewer, f"?slide={ready_slide.pk}&actor=rita")
    assert status == 200
    assert content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["action"] for row in rows] == ["comment.create", "review.decision"]
    assert rows[0]["actor"] == "rita"
    assert rows[0]["slide_id"] == str(ready_slide.pk)
    assert json.loads(rows[0]["details"]) == {}


@pytest.mark.django_db
def test_csv_cells_not_formulas(reviewer, ready_slide):
    audit_record(
        actor=reviewer,
        action=Action.COMMENT_CREATE,
        target_type="comment",
        target_id=1,
        summary="=HYPERLINK(\"http://example.invalid\")",
        slide_id=ready_slide.pk,
    )
    _, _, text = _export(reviewer, "?action=comment.create")
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert row["summary"].startswith("'=HYPERLINK")


@pytest.mark.django_db
def test_audit_page(audit_rows, reviewer, ready_slide):
    client = Client()
    client.force_login(reviewer)
    html = client.get(f"/audit/?action=comment.create&slide={ready_slide.pk}").content.decode()
    assert 'data-action="comment.create"' in html
    assert 'data-action="review.decision"' not in html
    assert f'href="/api/audit/export.csv?action=comment.create&amp;slide={ready_slide.pk}"' in html
    assert 'href="/audit/"' in html

    invalid = client.get("/audit/?slide=abc")
    assert invalid.status_code == 200
    assert "slide:" in invalid.content.decode()


@pytest.mark.django_db
def test_audit_admin_read_only(ready_slide, staff):
    event = AuditEvent.objects.get()
    client = Client()
    client.force_login(staff)
    assert client.get("/admin/audit/auditevent/").status_code == 200
    assert client.get(f"/admin/audit/auditevent/{event.pk}/change/").status_code == 200
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    assert client.get(f"/admin/audit/auditevent/{event.pk}/delete/").status_code == 403
    changed = client.post(f"/admin/audit/auditevent/{event.pk}/change/", {"summary": "edited"})
    assert changed.status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).summary != "edited"
