"""Reads of slides, annotated with their latest run and latest review in one query."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import Case, CharField, F, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Lower

from inkweb.core.exceptions import NotFoundError
from inkweb.reviews.models import ReviewDecision
from inkweb.runs.models import PipelineRun
from inkweb.slides.models import Slide
from inkweb.slides.states import SlideState

# Public sort keys of the list and the expressions they sort by; "-key" sorts descending.
SLIDE_ORDERINGS = {
    "name": Lower("name"),
    "created": F("created_at"),
    "format": F("format"),
    "width": F("width"),
    "mpp": F("mpp_x"),
    "state": F("state"),
    "ink": F("latest_ink_found"),
}


def _latest_run(*, succeeded_only: bool = False) -> QuerySet[PipelineRun]:
    runs = PipelineRun.objects.filter(slide=OuterRef("pk"))
    if succeeded_only:
        runs = runs.filter(status=PipelineRun.Status.SUCCEEDED)
    return runs.order_by("-created_at", "-id")


def _latest_review() -> QuerySet[ReviewDecision]:
    return ReviewDecision.objects.filter(slide=OuterRef("pk")).order_by("-created_at", "-id")


def _latest_output_review() -> QuerySet[ReviewDecision]:
    # Only a decision on the newest succeeded run, recorded against the checksum that run
    # has now, counts. So a newer run or a replaced output needs a new review.
    return ReviewDecision.objects.filter(
        slide=OuterRef("pk"),
        run_id=OuterRef("latest_succeeded_run_id"),
        output_sha256=OuterRef("latest_succeeded_sha256"),
    ).order_by("-created_at", "-id")


def _state_expression() -> Case:
    return Case(
        When(ingest_status=Slide.IngestStatus.PENDING, then=Value(SlideState.INGESTING)),
        When(ingest_status=Slide.IngestStatus.FAILED, then=Value(SlideState.INGEST_FAILED)),
        When(
            Q(latest_run_status__in=PipelineRun.ACTIVE_STATUSES), then=Value(SlideState.PROCESSING)
        ),
        When(
            output_review_decision=ReviewDecision.Decision.APPROVE, then=Value(SlideState.APPROVED)
        ),
        When(
            output_review_decision=ReviewDecision.Decision.REJECT, then=Value(SlideState.REJECTED)
        ),
        When(
            output_review_decision=ReviewDecision.Decision.REWORK,
            then=Value(SlideState.NEEDS_REWORK),
        ),
        # A failed or cancelled newer run leaves the older output awaiting review, so the
        # run states only apply to slides that have no succeeded run at all.
        When(latest_succeeded_run_id__isnull=False, then=Value(SlideState.TO_REVIEW)),
        When(Q(latest_run_status=PipelineRun.Status.FAILED), then=Value(SlideState.RUN_FAILED)),
        When(Q(latest_run_status=PipelineRun.Status.CANCELLED), then=Value(SlideState.CANCELLED)),
        default=Value(SlideState.NEW),
        output_field=CharField(),
    )


def slide_queryset_annotated() -> QuerySet[Slide]:
    """Return all slides with the latest run, latest succeeded run, latest review and state.

    ``output_review_decision`` is the newest decision on the newest succeeded run's
    current output (None when that output has no decision); it sets the review states.

    Everything comes from correlated subqueries, so listing N slides costs one query.
    """
    latest = _latest_run()
    succeeded = _latest_run(succeeded_only=True)
    review = _latest_review()
    slides = Slide.objects.select_related("uploaded_by").annotate(
        latest_run_id=Subquery(latest.values("id")[:1]),
        latest_run_status=Subquery(latest.values("status")[:1]),
        latest_run_progress=Subquery(latest.values("progress")[:1]),
        latest_run_stage=Subquery(latest.values("stage")[:1]),
        latest_run_message=Subquery(latest.values("message")[:1]),
        latest_run_error=Subquery(latest.values("error")[:1]),
        latest_succeeded_run_id=Subquery(succeeded.values("id")[:1]),
        latest_succeeded_sha256=Subquery(succeeded.values("restored_sha256")[:1]),
        latest_succeeded_finished_at=Subquery(succeeded.values("finished_at")[:1]),
        latest_ink_found=Subquery(succeeded.values("ink_found")[:1]),
        latest_review_decision=Subquery(review.values("decision")[:1]),
        latest_review_run_id=Subquery(review.values("run_id")[:1]),
        latest_review_at=Subquery(review.values("created_at")[:1]),
        latest_reviewer_username=Subquery(review.values("reviewer__username")[:1]),
    )
    slides = slides.annotate(
        output_review_decision=Subquery(_latest_output_review().values("decision")[:1])
    )
    return slides.annotate(state=_state_expression())


def slide_list(
    *,
    state: str | None = None,
    ordering: str = "-created",
    search: str | None = None,
    ids: Sequence[int] | None = None,
) -> QuerySet[Slide]:
    """Return annotated slides filtered by state, name search and ids, sorted by `ordering`.

    `ordering` is a key of SLIDE_ORDERINGS, optionally prefixed with "-"; an unknown key
    raises ValueError naming the valid ones.
    """
    slides = slide_queryset_annotated()
    if state:
        if state not in SlideState.values:
            raise ValueError(f"unknown state {state!r}; use one of {', '.join(SlideState.values)}")
        slides = slides.filter(state=state)
    if search:
        slides = slides.filter(Q(name__icontains=search) | Q(original_filename__icontains=search))
    if ids is not None:
        slides = slides.filter(pk__in=list(ids))

    descending = ordering.startswith("-")
    key = ordering.removeprefix("-")
    if key not in SLIDE_ORDERINGS:
        raise ValueError(f"unknown ordering {ordering!r}; use one of {', '.join(SLIDE_ORDERINGS)}")
    expression = SLIDE_ORDERINGS[key]
    expression = expression.desc(nulls_last=True) if descending else expression.asc(nulls_last=True)
    return slides.order_by(expression, "-id")


def slide_state_counts() -> dict[str, int]:
    """Return the number of slides in every state (zero for empty states)."""
    counts = dict.fromkeys(SlideState.values, 0)
    rows = slide_queryset_annotated().order_by().values_list("state", flat=True)
    for state in rows:
        counts[state] += 1
    return counts


def slide_get(*, slide_id: int) -> Slide:
    """Return one annotated slide, or raise NotFoundError."""
    slide = slide_queryset_annotated().filter(pk=slide_id).first()
    if slide is None:
        raise NotFoundError(f"Slide {slide_id} does not exist.", code="slide_not_found")
    return slide
