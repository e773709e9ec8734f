"""Review workflow rules: needs-rework, checksums, separation of duties, states and the queue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from inkweb.accounts.services import user_create_or_update
from inkweb.core.exceptions import ConflictError, ForbiddenError
from inkweb.reviews.models import ReviewDecision, ReviewDecisionImmutableError
from inkweb.reviews.selectors import review_queue, review_queue_next
from inkweb.reviews.services import review_record
from inkweb.runs.models import PipelineRun
from inkweb.slides.models import Slide
from inkweb.slides.selectors import slide_get
from tests.web.conftest import client_for

SHA_A = "a" * 64
SHA_B = "b" * 64


def _slide(index: int, *, uploaded_by) -> Slide:
    return Slide.objects.create(
        name=f"queue slide {index}",
        original_filename=f"queue-{index}.svs",
        original_path=f"originals/{index}/queue.svs",
        file_size_bytes=100,
        sha256=f"{index:064x}",
        width=1000,
        height=800,
        ingest_status=Slide.IngestStatus.READY,
        uploaded_by=uploaded_by,
    )


def _run(slide, *, requested_by, status="succeeded", finished_minutes_ago=None, sha=SHA_A):
    finished = None
    if finished_minutes_ago is not None:
        finished = timezone.now() - timedelta(minutes=finished_minutes_ago)
    return PipelineRun.objects.create(
        slide=slide,
        requested_by=requested_by,
        status=status,
        finished_at=finished,
        restored_sha256=sha if status == "succeeded" else "",
    )


@pytest.fixture
def both_roles(db):
    """A user who uploads and reviews."""
    user_create_or_update(username="bo", password="bo-password-1", role="uploader")
    user, _ = user_create_or_update(username="bo", password="bo-password-1", role="reviewer")
    return user


# ---------------------------------------------------------------- decisions


@pytest.mark.django_db
def test_rework_decision_sets_state(succeeded_run, reviewer):
    slide = succeeded_run.slide
    review = review_record(slide=slide, reviewer=reviewer, decision="rework", note="halo at edge")

    assert review.decision == ReviewDecision.Decision.REWORK
    assert review.get_decision_display() == "Needs rework"
    assert slide_get(slide_id=slide.pk).state == "needs_rework"


@pytest.mark.django_db
def test_decision_keeps_run_and_checksum(succeeded_run, reviewer):
    PipelineRun.objects.filter(pk=succeeded_run.pk).update(restored_sha256=SHA_A)
    succeeded_run.refresh_from_db()
    for decision in ("approve", "reject", "rework"):
        review = review_record(
            slide=succeeded_run.slide, reviewer=reviewer, decision=decision, note=f"{decision} it"
        )
        stored = ReviewDecision.objects.get(pk=review.pk)
        assert stored.run_id == succeeded_run.pk
        assert stored.output_sha256 == SHA_A
        assert stored.reviewer_id == reviewer.pk
        assert stored.decision == decision
        assert stored.note == f"{decision} it"
        assert stored.created_at is not None


@pytest.mark.django_db
def test_replaced_output_needs_new_review(succeeded_run, reviewer):
    PipelineRun.objects.filter(pk=succeeded_run.pk).update(restored_sha256=SHA_A)
    slide = succeeded_run.slide
    review_record(slide=slide, reviewer=reviewer, decision="approve")
    assert slide_get(slide_id=slide.pk).state == "approved"

    PipelineRun.objects.filter(pk=succeeded_run.pk).update(restored_sha256=SHA_B)
    assert slide_get(slide_id=slide.pk).state == "to_review"
    assert [s.pk for s in review_queue()] == [slide.pk]


@pytest.mark.django_db
def test_append_only_enforced(succeeded_run, reviewer):
    review = review_record(slide=succeeded_run.slide, reviewer=reviewer, decision="rework")

    review.decision = "approve"
    with pytest.raises(ReviewDecisionImmutableError):
        review.save()
    with pytest.raises(ReviewDecisionImmutableError):
        review.delete()
    with pytest.raises(ReviewDecisionImmutableError):
        ReviewDecision.objects.filter(pk=review.pk).update(output_sha256=SHA_B)
    with pytest.raises(ReviewDecisionImmutableError):
        ReviewDecision.objects.filter(pk=review.pk).delete()
    assert ReviewDecision.objects.get(pk=review.pk).decision == "rework"


@pytest.mark.django_db
def test_admin_is_read_only(succeeded_run, reviewer, staff):
    from django.test import Client

    review = review_record(slide=succeeded_run.slide, reviewer=reviewer, decision="approve")
    client = Client()
    client.force_login(staff)
    assert client.get("/admin/reviews/reviewdecision/").status_code == 200
    assert client.get("/admin/reviews/reviewdecision/add/").status_code == 403
    assert client.get(f"/admin/reviews/reviewdecision/{review.pk}/delete/").status_code == 403
    change = client.post(
        f"/admin/reviews/reviewdecision/{review.pk}/change/", {"decision": "reject"}
    )
    assert change.status_code == 403
    assert ReviewDecision.objects.get(pk=review.pk).decision == "approve"


# ---------------------------------------------------------------- separation of duties


@pytest.mark.django_db
def test_separation_off_allows_own_slide(settings, both_roles, ready_slide):
    settings.INKWEB_SEPARATION_OF_DUTIES = False
    Slide.objects.filter(pk=ready_slide.pk).update(uploaded_by=both_roles)
    run = _run(ready_slide, requested_by=both_roles)

    review = review_record(slide=ready_slide, reviewer=both_roles, decision="approve", run=run)
    assert review.decision == "approve"


@pytest.mark.django_db
def test_separation_blocks_uploader(settings, both_roles, uploader, ready_slide):
    settings.INKWEB_SEPARATION_OF_DUTIES = True
    Slide.objects.filter(pk=ready_slide.pk).update(uploaded_by=both_roles)
    ready_slide.refresh_from_db()
    run = _run(ready_slide, requested_by=uploader)

    with pytest.raises(ForbiddenError) as error:
        review_record(slide=ready_slide, reviewer=both_roles, decision="approve", run=run)
    assert error.value.code == "separation_of_duties"
    assert "you uploaded slide" in error.value.detail.lower()
    assert not ReviewDecision.objects.filter(slide=ready_slide).exists()

    # Rejecting and asking for rework stay open to the uploader.
    review_record(slide=ready_slide, reviewer=both_roles, decision="reject", run=run)
    review_record(slide=ready_slide, reviewer=both_roles, decision="rework", run=run)
    assert ReviewDecision.objects.filter(slide=ready_slide).count() == 2


@pytest.mark.django_db
def test_separation_blocks_requester(settings, both_roles, uploader, ready_slide):
    settings.INKWEB_SEPARATION_OF_DUTIES = True
    assert ready_slide.uploaded_by_id == uploader.pk
    run = _run(ready_slide, requested_by=both_roles)

    with pytest.raises(ForbiddenError) as error:
        review_record(slide=ready_slide, reviewer=both_roles, decision="approve", run=run)
    assert error.value.code == "separation_of_duties"
    assert f"you requested run {run.pk}" in error.value.detail.lower()


def _revision(parent, *, requested_by, status="succeeded") -> PipelineRun:
    return PipelineRun.objects.create(
        slide=parent.slide,
        requested_by=requested_by,
        status=status,
        restored_sha256=SHA_B if status == "succeeded" else "",
        kind=PipelineRun.Kind.REVISION,
        parent=parent,
        corrections=[{"x": 0, "y": 0, "width": 10, "height": 10, "action": "keep-original"}],
    )


@pytest.mark.django_db
def test_separation_covers_revision_chain(settings, both_roles, reviewer, uploader, ready_slide):
    settings.INKWEB_SEPARATION_OF_DUTIES = True
    requested = _run(ready_slide, requested_by=both_roles)
    first = _revision(requested, requested_by=reviewer)
    second = _revision(first, requested_by=reviewer)

    with pytest.raises(ForbiddenError) as error:
        review_record(slide=ready_slide, reviewer=both_roles, decision="approve", run=second)
    assert error.value.code == "separation_of_duties"
    assert f"you requested run {requested.pk}" in error.value.detail.lower()
    assert not ReviewDecision.objects.filter(slide=ready_slide).exists()

    # The reviewer who made the revisions requested runs of the chain too.
    with pytest.raises(ForbiddenError):
        review_record(slide=ready_slide, reviewer=reviewer, decision="approve", run=second)

    review_record(slide=ready_slide, reviewer=both_roles, decision="rework", run=second)
    assert slide_get(slide_id=ready_slide.pk).state == "needs_rework"


@pytest.mark.django_db
def test_separation_revision_api_error(settings, both_roles, reviewer, ready_slide):
    settings.INKWEB_SEPARATION_OF_DUTIES = True
    revision = _revision(_run(ready_slide, requested_by=both_roles), requested_by=reviewer)
    response = client_for(both_roles).post(
        f"/api/slides/{ready_slide.pk}/reviews/",
        {"decision": "approve", "run": revision.pk},
        format="json",
    )
    assert response.status_code == 403
    assert response.json()["code"] == "separation_of_duties"


@pytest.mark.django_db
def test_separation_allows_other_reviewer(settings, reviewer, uploader, ready_slide):
    settings.INKWEB_SEPARATION_OF_DUTIES = True
    run = _run(ready_slide, requested_by=uploader)
    review = review_record(slide=ready_slide, reviewer=reviewer, decision="approve", run=run)
    assert slide_get(slide_id=ready_slide.pk).state == "approved"
    assert review.run_id == run.pk


@pytest.mark.django_db
def test_separation_api_error(settings, both_roles, ready_slide):
    settings.INKWEB_SEPARATION_OF_DUTIES = True
    Slide.objects.filter(pk=ready_slide.pk).update(uploaded_by=both_roles)
    _run(ready_slide, requested_by=both_roles)

    response = client_for(both_roles).post(
        f"/api/slides/{ready_slide.pk}/reviews/", {"decision": "approve"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "separation_of_duties"
    assert "another reviewer" in response.json()["detail"]


# ---------------------------------------------------------------- states


@pytest.mark.django_db
def test_new_run_returns_to_review(succeeded_run, reviewer, uploader):
    slide = succeeded_run.slide
    review_record(slide=slide, reviewer=reviewer, decision="approve")
    assert slide_get(slide_id=slide.pk).state == "approved"

    newer = _run(slide, requested_by=uploader, status="queued")
    assert slide_get(slide_id=slide.pk).state == "processing"
    assert slide.pk not in [s.pk for s in review_queue()]

    PipelineRun.objects.filter(pk=newer.pk).update(
        status=PipelineRun.Status.SUCCEEDED, finished_at=timezone.now(), restored_sha256=SHA_B
    )
    assert slide_get(slide_id=slide.pk).state == "to_review"
    assert [s.pk for s in review_queue()] == [slide.pk]


@pytest.mark.django_db
def test_failed_rerun_keeps_approval(succeeded_run, reviewer, uploader):
    slide = succeeded_run.slide
    review_record(slide=slide, reviewer=reviewer, decision="approve")
    _run(slide, requested_by=uploader, status="failed")
    assert slide_get(slide_id=slide.pk).state == "approved"
    assert slide.pk not in [s.pk for s in review_queue()]


@pytest.mark.django_db
def test_decision_on_superseded_run_rejected(succeeded_run, reviewer, uploader):
    slide = succeeded_run.slide
    newer = _run(slide, requested_by=uploader)
    review_record(slide=slide, reviewer=reviewer, decision="approve", run=newer)

    with pytest.raises(ConflictError) as error:
        review_record(slide=slide, reviewer=reviewer, decision="reject", run=succeeded_run)
    assert error.value.code == "run_superseded"
    assert f"run {newer.pk}" in error.value.detail
    assert ReviewDecision.objects.filter(run=succeeded_run).count() == 0
    assert slide_get(slide_id=slide.pk).state == "approved"


@pytest.mark.django_db
def test_superseded_run_api_conflict(succeeded_run, reviewer, uploader):
    slide = succeeded_run.slide
    newer = _run(slide, requested_by=uploader)
    response = client_for(reviewer).post(
        f"/api/slides/{slide.pk}/reviews/",
        {"decision": "approve", "run": succeeded_run.pk},
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["code"] == "run_superseded"
    assert f"run {newer.pk}" in response.json()["detail"]
    assert slide_get(slide_id=slide.pk).state == "to_review"


@pytest.mark.parametrize("newer_status", ["failed", "cancelled"])
@pytest.mark.django_db
def test_failed_newer_run_keeps_review_state(succeeded_run, reviewer, uploader, newer_status):
    slide = succeeded_run.slide
    _run(slide, requested_by=uploader, status=newer_status)

    listed = slide_get(slide_id=slide.pk)
    assert listed.state == "to_review"
    assert listed.latest_run_status == newer_status
    assert listed.latest_succeeded_run_id == succeeded_run.pk
    assert [queued.pk for queued in review_queue()] == [slide.pk]

    review_record(slide=slide, reviewer=reviewer, decision="rework")
    assert slide_get(slide_id=slide.pk).state == "needs_rework"


@pytest.mark.django_db
def test_failed_revision_keeps_queue_entry(succeeded_run, reviewer, uploader):
    slide = succeeded_run.slide
    PipelineRun.objects.create(
        slide=slide,
        requested_by=reviewer,
        status=PipelineRun.Status.FAILED,
        kind=PipelineRun.Kind.REVISION,
        parent=succeeded_run,
        corrections=[{"x": 0, "y": 0, "width": 10, "height": 10, "action": "keep-original"}],
    )
    body = client_for(reviewer).get("/api/reviews/queue/").json()
    assert [entry["slide_id"] for entry in body["results"]] == [slide.pk]
    assert body["results"][0]["run_id"] == succeeded_run.pk


# ---------------------------------------------------------------- queue


@pytest.fixture
def queued_slides(uploader, reviewer):
    """Six slides: three awaiting review (finished 30, 10, 20 minutes ago), three not."""
    oldest, newest, middle = (_slide(i, uploaded_by=uploader) for i in (1, 2, 3))
    _run(oldest, requested_by=uploader, finished_minutes_ago=30)
    _run(newest, requested_by=uploader, finished_minutes_ago=10)
    _run(middle, requested_by=uploader, finished_minutes_ago=20)

    reviewed = _slide(4, uploaded_by=uploader)
    run = _run(reviewed, requested_by=uploader, finished_minutes_ago=40)
    review_record(slide=reviewed, reviewer=reviewer, decision="reject", run=run)

    only_failed = _slide(5, uploaded_by=uploader)
    _run(only_failed, requested_by=uploader, status="failed")
    _slide(6, uploaded_by=uploader)
    return [oldest, middle, newest]


@pytest.mark.django_db
def test_queue_order_and_content(queued_slides):
    assert [slide.pk for slide in review_queue()] == [slide.pk for slide in queued_slides]


@pytest.mark.django_db
def test_queue_next_follows_order(queued_slides, reviewer):
    oldest, middle, newest = queued_slides
    assert review_queue_next().pk == oldest.pk
    assert review_queue_next(after_slide_id=oldest.pk).pk == middle.pk
    assert review_queue_next(after_slide_id=middle.pk).pk == newest.pk
    # Past the end it wraps to the first slide still waiting.
    assert review_queue_next(after_slide_id=newest.pk).pk == oldest.pk

    # A decided slide has left the queue, and the one after its old place comes next.
    review_record(slide=middle, reviewer=reviewer, decision="approve")
    assert [slide.pk for slide in review_queue()] == [oldest.pk, newest.pk]
    assert review_queue_next(after_slide_id=middle.pk).pk == newest.pk


@pytest.mark.django_db
def test_queue_next_empty(succeeded_run, reviewer):
    slide = succeeded_run.slide
    assert review_queue_next(after_slide_id=slide.pk) is None
    review_record(slide=slide, reviewer=reviewer, decision="approve")
    assert review_queue_next() is None


@pytest.mark.django_db
def test_queue_api(queued_slides, reviewer, django_assert_num_queries):
    client = client_for(reviewer)
    with django_assert_num_queries(4):
        # Session and user, then one COUNT and one SELECT.
        body = client.get("/api/reviews/queue/").json()
    assert body["count"] == 3
    assert [entry["slide_id"] for entry in body["results"]] == [s.pk for s in queued_slides]
    first = body["results"][0]
    assert first["viewer_url"] == f"/slides/{queued_slides[0].pk}/?queue=1"
    assert first["run_id"] == queued_slides[0].runs.get().pk
    assert first["uploaded_by"] == "uma"

    following = client.get(f"/api/reviews/queue/next/?after={queued_slides[0].pk}").json()
    assert following["next"]["slide_id"] == queued_slides[1].pk
    assert following["count"] == 3
    assert client.get("/api/reviews/queue/next/?after=x").status_code == 400


@pytest.mark.django_db
def test_queue_api_after_last_decision(succeeded_run, reviewer):
    client = client_for(reviewer)
    client.post(f"/api/slides/{succeeded_run.slide_id}/reviews/", {"decision": "approve"})
    body = client.get(f"/api/reviews/queue/next/?after={succeeded_run.slide_id}").json()
    assert body == {"next": None, "count": 0}


@pytest.mark.django_db
def test_review_api_returns_checksum(succeeded_run, reviewer):
    PipelineRun.objects.filter(pk=succeeded_run.pk).update(restored_sha256=SHA_A)
    response = client_for(reviewer).post(
        f"/api/slides/{succeeded_run.slide_id}/reviews/",
        {"decision": "rework", "note": "redo the circle"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["decision"] == "rework"
    assert body["output_sha256"] == SHA_A
    assert body["run_id"] == succeeded_run.pk


@pytest.mark.django_db
def test_queue_and_viewer_pages(queued_slides, reviewer):
    from django.test import Client

    client = Client()
    client.force_login(reviewer)
    page = client.get("/review/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'href="/slides/{queued_slides[0].pk}/?queue=1">Start reviewing' in html
    for slide in queued_slides:
        assert f'data-slide-id="{slide.pk}"' in html
    assert 'href="/review/"' in html

    viewer = client.get(f"/slides/{queued_slides[0].pk}/?queue=1").content.decode()
    assert 'id="queue-next"' in viewer
    assert 'value="rework"' in viewer
    plain = client.get(f"/slides/{queued_slides[0].pk}/").content.decode()
    assert 'id="queue-next"' not in plain


@pytest.mark.django_db
def test_shortcut_hints_only_for_reviewers(queued_slides, reviewer, uploader):
    from django.test import Client

    hints = ("<kbd>a</kbd> approve", "<kbd>n</kbd>")
    for user, shown in ((reviewer, True), (uploader, False)):
        client = Client()
        client.force_login(user)
        queue_page = client.get("/review/").content.decode()
        viewer = client.get(f"/slides/{queued_slides[0].pk}/?queue=1").content.decode()
        for hint in hints:
            assert (hint in queue_page) is shown, (user.username, "queue", hint)
            assert (hint in viewer) is shown, (user.username, "viewer", hint)


@pytest.mark.django_db
def test_viewer_superseded_run_read_only(succeeded_run, reviewer, uploader):
    from django.test import Client

    slide = succeeded_run.slide
    newer = _run(slide, requested_by=uploader)
    client = Client()
    client.force_login(reviewer)

    old_page = client.get(f"/slides/{slide.pk}/?run={succeeded_run.pk}").content.decode()
    assert 'id="review-superseded"' in old_page
    assert f'href="?run={newer.pk}"' in old_page
    assert 'id="review-form"' not in old_page
    assert 'id="correct-start"' not in old_page

    new_page = client.get(f"/slides/{slide.pk}/?run={newer.pk}").content.decode()
    assert 'id="review-superseded"' not in new_page
    assert 'id="review-form"' in new_page
    assert 'id="correct-start"' in new_page
