"""Writes on reviews: record an approve or reject decision on a run's output."""

from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser

from inkweb.accounts.roles import Role, user_has_role
from inkweb.core.broadcast import ALL_ACTIVITY_GROUP, broadcast_send, slide_group
from inkweb.core.exceptions import ConflictError, ForbiddenError
from inkweb.reviews.models import ReviewDecision
from inkweb.runs.models import PipelineRun
from inkweb.runs.selectors import run_latest_succeeded
from inkweb.slides.models import Slide

logger = logging.getLogger(__name__)


def review_record(
    *,
    slide: Slide,
    reviewer: AbstractBaseUser,
    decision: str,
    note: str = "",
    run: PipelineRun | None = None,
) -> ReviewDecision:
    """Append a decision on `run` (default: the slide's newest succeeded run).

    Raises ForbiddenError without the reviewer role, and ConflictError when the run is not
    a succeeded run of this slide.
    """
    if not user_has_role(reviewer, Role.REVIEWER):
        raise ForbiddenError("Recording a review decision needs the reviewer role.")

    if run is None:
        run = run_latest_succeeded(slide_id=slide.pk)
        if run is None:
            raise ConflictError(
                f"Slide {slide.pk} has no finished run to review; run ink removal first.",
                code="nothing_to_review",
            )
    if run.slide_id != slide.pk:
        raise ConflictError(
            f"Run {run.pk} belongs to slide {run.slide_id}, not slide {slide.pk}.",
            code="run_of_other_slide",
        )
    if run.status != PipelineRun.Status.SUCCEEDED:
        raise ConflictError(
            f"Run {run.pk} has status {run.status}; only succeeded runs can be reviewed.",
            code="run_not_reviewable",
        )

    review = ReviewDecision(
        slide=slide, run=run, reviewer=reviewer, decision=decision, note=note.strip()
    )
    review.full_clean()
    review.save()

    logger.info(
        "Review %s: %s of slide %s run %s by user %s",
        review.pk,
        decision,
        slide.pk,
        run.pk,
        reviewer.pk,
    )
    broadcast_send(
        groups=[ALL_ACTIVITY_GROUP, slide_group(slide.pk)],
        message={"type": "slide.updated", "slide_id": slide.pk},
    )
    return review
