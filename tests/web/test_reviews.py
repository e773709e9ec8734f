"""Review decisions: recorded per run, append-only, the newest one is the slide's state."""

from __future__ import annotations

import pytest

from inkweb.core.exceptions import ConflictError, ForbiddenError
from inkweb.reviews.models import ReviewDecision, ReviewDecisionImmutableError
from inkweb.reviews.services import review_record
from inkweb.runs.models import PipelineRun
from inkweb.slides.selectors import slide_get
from tests.web.conftest import client_for


@pytest.mark.django_db
def test_latest_decision_is_state(succeeded_run, reviewer):
    slide = succeeded_run.slide
    assert slide_get(slide_id=slide.pk).state == "to_review"

    review_record(slide=slide, reviewer=reviewer, decision="approve", note="clean")
    assert slide_get(slide_id=slide.pk).state == "approved"

    review_record(slide=slide, reviewer=reviewer, decision="reject", note="halo left")
    assert slide_get(slide_id=slide.pk).state == "rejected"
    assert [r.decision for r in ReviewDecision.objects.filter(slide=slide)] == ["reject", "approve"]


@pytest.mark.django_db
def test_decision_rows_cannot_change(succeeded_run, reviewer):
    review = review_record(slide=succeeded_run.slide, reviewer=reviewer, decision="approve")

    review.note = "edited"
    with pytest.raises(ReviewDecisionImmutableError):
        review.save()
    with pytest.raises(ReviewDecisionImmutableError):
        review.delete()
    with pytest.raises(ReviewDecisionImmutableError):
        ReviewDecision.objects.filter(pk=review.pk).update(decision="reject")
    with pytest.raises(ReviewDecisionImmutableError):
        ReviewDecision.objects.all().delete()

    stored = ReviewDecision.objects.get(pk=review.pk)
    assert stored.decision == "approve"
    assert stored.note == ""


@pytest.mark.django_db
def test_review_needs_reviewer_role(succeeded_run, uploader):
    with pytest.raises(ForbiddenError):
        review_record(slide=succeeded_run.slide, reviewer=uploader, decision="approve")
    response = client_for(uploader).post(
        f"/api/slides/{succeeded_run.slide_id}/reviews/", {"decision": "approve"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


@pytest.mark.django_db
def test_review_needs_finished_run(ready_slide, reviewer, uploader):
    with pytest.raises(ConflictError) as error:
        review_record(slide=ready_slide, reviewer=reviewer, decision="approve")
    assert error.value.code == "nothing_to_review"

    running = PipelineRun.objects.create(
        slide=ready_slide, requested_by=uploader, status=PipelineRun.Status.RUNNING
    )
    with pytest.raises(ConflictError) as error:
        review_record(slide=ready_slide, reviewer=reviewer, decision="approve", run=running)
    assert error.value.code == "run_not_reviewable"


@pytest.mark.django_db
def test_review_of_other_slide_run(succeeded_run, reviewer, shared_data, uploader):
    from inkweb.slides.services import slide_import

    other = slide_import(path=shared_data / "slides" / "boxes.tiff", imported_by=uploader)
    with pytest.raises(ConflictError) as error:
        review_record(slide=other, reviewer=reviewer, decision="approve", run=succeeded_run)
    assert error.value.code == "run_of_other_slide"


@pytest.mark.django_db
def test_new_run_needs_new_review(succeeded_run, reviewer, uploader):
    slide = succeeded_run.slide
    review_record(slide=slide, reviewer=reviewer, decision="approve")
    newer = PipelineRun.objects.create(
        slide=slide, requested_by=uploader, status=PipelineRun.Status.SUCCEEDED
    )
    assert slide_get(slide_id=slide.pk).state == "to_review"
    review_record(slide=slide, reviewer=reviewer, decision="approve", run=newer)
    assert slide_get(slide_id=slide.pk).state == "approved"


@pytest.mark.django_db
def test_review_api_round_trip(succeeded_run, reviewer):
    client = client_for(reviewer)
    url = f"/api/slides/{succeeded_run.slide_id}/reviews/"
    created = client.post(url, {"decision": "reject", "note": "ink left at edge"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["run_id"] == succeeded_run.pk
    assert body["reviewer"] == reviewer.username

    listed = client.get(url).json()
    assert listed[0]["note"] == "ink left at edge"
    assert listed[0]["decision"] == "reject"

    invalid = client.post(url, {"decision": "maybe"}, format="json")
    assert invalid.status_code == 400
    assert invalid.json()["code"] == "invalid"
    assert "decision" in invalid.json()["fields"]
