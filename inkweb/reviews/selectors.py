"""Reads of review decisions, the review queue and slide comments."""

from __future__ import annotations

from django.db.models import F, Q, QuerySet

from inkweb.reviews.models import ReviewDecision, SlideComment
from inkweb.runs.models import PipelineRun
from inkweb.slides.models import Slide
from inkweb.slides.selectors import slide_queryset_annotated
from inkweb.slides.states import SlideState


def review_list(*, slide_id: int) -> QuerySet[ReviewDecision]:
    """Return a slide's decisions, newest first."""
    return (
        ReviewDecision.objects.filter(slide_id=slide_id)
        .select_related("reviewer")
        .order_by("-created_at", "-id")
    )


def review_latest(*, slide_id: int) -> ReviewDecision | None:
    """Return the slide's newest decision, or None when it was never reviewed."""
    return review_list(slide_id=slide_id).first()


def review_queue() -> QuerySet[Slide]:
    """Return the slides awaiting review, oldest finished run first.

    A slide awaits review when its newest succeeded run's output has no decision yet and
    no run is queued or running (state "to_review"). A newer failed or cancelled run does
    not take it out. Runs without a finish time sort last, and ties sort by run id. Each
    slide carries the annotations of ``slide_queryset_annotated``.
    """
    return (
        slide_queryset_annotated()
        .filter(state=SlideState.TO_REVIEW)
        .order_by(
            F("latest_succeeded_finished_at").asc(nulls_last=True), "latest_succeeded_run_id"
        )
    )


def review_queue_next(*, after_slide_id: int | None = None) -> Slide | None:
    """Return the queued slide that follows `after_slide_id` in queue order, or None.

    Without `after_slide_id`, or when nothing follows it, this is the first queued slide
    other than `after_slide_id`, so skipping through the queue wraps around. The slide
    need not be queued itself: after its decision it has left the queue, and the slide
    after its old place comes next.
    """
    queue = review_queue()
    if after_slide_id is None:
        return queue.first()

    queue = queue.exclude(pk=after_slide_id)
    current = (
        PipelineRun.objects.filter(slide_id=after_slide_id, status=PipelineRun.Status.SUCCEEDED)
        .order_by("-created_at", "-id")
        .only("id", "finished_at")
        .first()
    )
    following = None
    if current is not None:
        later_run = Q(latest_succeeded_run_id__gt=current.pk)
        if current.finished_at is None:
            after = Q(latest_succeeded_finished_at__isnull=True) & later_run
        else:
            finished = current.finished_at
            after = (
                Q(latest_succeeded_finished_at__gt=finished)
                | (Q(latest_succeeded_finished_at=finished) & later_run)
                | Q(latest_succeeded_finished_at__isnull=True)
            )
        following = queue.filter(after).first()
    return following or queue.first()


def comment_list(*, slide_id: int) -> QuerySet[SlideComment]:
    """Return a slide's comments, oldest first (a comment's position is its marker number)."""
    return (
        SlideComment.objects.filter(slide_id=slide_id)
        .select_related("author")
        .order_by("created_at", "id")
    )
