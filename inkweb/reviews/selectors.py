"""Reads of review decisions."""

from __future__ import annotations

from django.db.models import QuerySet

from inkweb.reviews.models import ReviewDecision


def review_list(*, slide_id: int) -> QuerySet[ReviewDecision]:
    """Return a slide's decisions, newest first (the first one is its review state)."""
    return (
        ReviewDecision.objects.filter(slide_id=slide_id)
        .select_related("reviewer")
        .order_by("-created_at", "-id")
    )


def review_latest(*, slide_id: int) -> ReviewDecision | None:
    """Return the slide's newest decision, or None when it was never reviewed."""
    return review_list(slide_id=slide_id).first()
