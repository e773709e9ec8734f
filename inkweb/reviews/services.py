"""Writes on reviews: record a decision on a run's output, and pin a comment to a slide."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from inkweb.accounts.roles import Role, user_has_role
from inkweb.audit.models import AuditEvent
from inkweb.audit.services import audit_record
from inkweb.core.broadcast import ALL_ACTIVITY_GROUP, broadcast_send, slide_group
from inkweb.core.exceptions import ApplicationError, ConflictError, ForbiddenError
from inkweb.reviews.models import ReviewDecision, SlideComment
from inkweb.runs.models import PipelineRun
from inkweb.runs.selectors import run_ancestry, run_latest_succeeded
from inkweb.slides.models import Slide

logger = logging.getLogger(__name__)

COMMENT_MAX_CHARS = 2000


def review_separation_check(*, slide: Slide, run: PipelineRun, reviewer: AbstractBaseUser) -> None:
    """Raise ForbiddenError when INKWEB_SEPARATION_OF_DUTIES forbids `reviewer` to approve.

    With the setting on, the user who uploaded the slide may not approve it. Neither may
    any user who requested `run` or one of its revision parents, so a revision made by
    someone else does not release a run the reviewer requested. Without the setting this
    does nothing.
    """
    if not settings.INKWEB_SEPARATION_OF_DUTIES:
        return
    if slide.uploaded_by_id is not None and slide.uploaded_by_id == reviewer.pk:
        raise ForbiddenError(
            f"You uploaded slide {slide.pk}, and separation of duties is on, so another "
            "reviewer must approve it. You can still reject it or ask for rework.",
            code="separation_of_duties",
        )
    for requested in run_ancestry(run=run):
        if requested.requested_by_id is not None and requested.requested_by_id == reviewer.pk:
            revision_of = "" if requested.pk == run.pk else f", which run {run.pk} revises"
            raise ForbiddenError(
                f"You requested run {requested.pk}{revision_of}, and separation of duties is "
                "on, so another reviewer must approve it. You can still reject it or ask for "
                "rework.",
                code="separation_of_duties",
            )


def _reviewable_run(*, slide: Slide, run: PipelineRun | None) -> PipelineRun:
    """Return `run`, or the slide's newest succeeded run, after checking it can be reviewed."""
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
    latest = run_latest_succeeded(slide_id=slide.pk)
    if latest is not None and latest.pk != run.pk:
        # A decision on a replaced output would never count towards the slide's state.
        raise ConflictError(
            f"Run {run.pk} was replaced by run {latest.pk}, the newest succeeded run of slide "
            f"{slide.pk}; review run {latest.pk} instead.",
            code="run_superseded",
        )
    return run


def review_record(
    *,
    slide: Slide,
    reviewer: AbstractBaseUser,
    decision: str,
    note: str = "",
    run: PipelineRun | None = None,
) -> ReviewDecision:
    """Append a decision on `run` (default: the slide's newest succeeded run).

    The decision stores the run and the checksum of its restored output. Raises
    ForbiddenError without the reviewer role or when separation of duties forbids an
    approval, and ConflictError when the run is not the newest succeeded run of this slide.
    """
    if not user_has_role(reviewer, Role.REVIEWER):
        raise ForbiddenError("Recording a review decision needs the reviewer role.")

    run = _reviewable_run(slide=slide, run=run)
    if decision == ReviewDecision.Decision.APPROVE:
        review_separation_check(slide=slide, run=run, reviewer=reviewer)

    review = ReviewDecision(
        slide=slide,
        run=run,
        reviewer=reviewer,
        decision=decision,
        note=note.strip(),
        output_sha256=run.restored_sha256,
    )
    review.full_clean()
    with transaction.atomic():
        review.save()
        audit_record(
            actor=reviewer,
            action=AuditEvent.Action.REVIEW_DECISION,
            target_type="review",
            target_id=review.pk,
            summary=(
                f"{reviewer.get_username()} recorded the decision "
                f"\"{review.get_decision_display()}\" on run {run.pk} of slide {slide.pk}."
            ),
            slide_id=slide.pk,
            details={
                "decision": decision,
                "run_id": run.pk,
                "output_sha256": review.output_sha256,
                "note": review.note,
            },
        )

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


def comment_create(
    *,
    slide: Slide,
    author: AbstractBaseUser,
    x: float,
    y: float,
    text: str,
    run: PipelineRun | None = None,
) -> SlideComment:
    """Pin a comment at (`x`, `y`) in level-0 pixels of `slide`, optionally on a run.

    Raises ForbiddenError unless the author is a reviewer or an uploader,
    ConflictError while the slide has no known size, and ApplicationError (400) for a
    point outside the slide, an empty or too long text, or a run of another slide.
    """
    if not (user_has_role(author, Role.REVIEWER) or user_has_role(author, Role.UPLOADER)):
        raise ForbiddenError("Adding a comment needs the reviewer or uploader role.")
    if not slide.width or not slide.height:
        raise ConflictError(
            f"Slide {slide.pk} has no known size yet; wait for its ingest to finish.",
            code="slide_not_ready",
        )
    # Pixel i covers [i, i + 1), so every point on the slide has 0 <= x < width.
    if not (0 <= x < slide.width and 0 <= y < slide.height):
        raise ApplicationError(
            f"The point ({x:g}, {y:g}) is outside slide {slide.pk}, which is "
            f"{slide.width} x {slide.height} pixels; pick a point on the image.",
            code="comment_out_of_bounds",
        )
    text = text.strip()
    if not text:
        raise ApplicationError("The comment text is empty; write what you saw.", code="invalid")
    if len(text) > COMMENT_MAX_CHARS:
        raise ApplicationError(
            f"The comment has {len(text)} characters; the maximum is {COMMENT_MAX_CHARS}.",
            code="invalid",
        )
    if run is not None and run.slide_id != slide.pk:
        raise ApplicationError(
            f"Run {run.pk} belongs to slide {run.slide_id}, not slide {slide.pk}.",
            code="run_of_other_slide",
        )

    comment = SlideComment(slide=slide, run=run, author=author, x=x, y=y, text=text)
    comment.full_clean()
    with transaction.atomic():
        comment.save()
        audit_record(
            actor=author,
            action=AuditEvent.Action.COMMENT_CREATE,
            target_type="comment",
            target_id=comment.pk,
            summary=(
                f"{author.get_username()} commented on slide {slide.pk} "
                f"at ({x:.0f}, {y:.0f})."
            ),
            slide_id=slide.pk,
            details={"x": x, "y": y, "run_id": run.pk if run else None, "text": text},
        )

    logger.info("Comment %s on slide %s by user %s", comment.pk, slide.pk, author.pk)
    return comment
