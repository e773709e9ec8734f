"""The ReviewDecision model: an append-only log whose latest row is a slide's review state."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ReviewDecisionImmutableError(Exception):
    """Raised on any attempt to change or delete a recorded review decision."""


class ReviewDecisionQuerySet(models.QuerySet):
    """QuerySet whose bulk update and delete raise: decisions are permanent records."""

    def update(self, **kwargs):  # noqa: D102
        raise ReviewDecisionImmutableError(
            "review decisions are append-only; record a new decision instead of updating one"
        )

    def delete(self):  # noqa: D102
        raise ReviewDecisionImmutableError("review decisions are append-only and cannot be deleted")


class ReviewDecision(models.Model):
    """One reviewer's approve or reject decision on one run's restored slide.

    Rows are only ever inserted. The newest row of a slide (highest created_at, then id)
    is the slide's review state; older rows are its history.
    """

    class Decision(models.TextChoices):
        """The two outcomes of a review."""

        APPROVE = "approve", "Approved"
        REJECT = "reject", "Rejected"

    slide = models.ForeignKey(
        "slides.Slide", on_delete=models.PROTECT, related_name="review_decisions"
    )
    run = models.ForeignKey(
        "runs.PipelineRun", on_delete=models.PROTECT, related_name="review_decisions"
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="review_decisions"
    )
    decision = models.CharField(max_length=16, choices=Decision.choices)
    note = models.TextField(blank=True, max_length=4000)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = ReviewDecisionQuerySet.as_manager()

    class Meta:
        """Newest first, indexed for the latest decision of a slide."""

        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["slide", "-created_at", "-id"], name="reviews_slide_latest")
        ]

    def __str__(self) -> str:
        return f"{self.decision} of slide {self.slide_id} run {self.run_id} by {self.reviewer_id}"

    def save(self, *args, **kwargs) -> None:
        """Insert the decision; saving a row that already exists raises."""
        if not self._state.adding:
            raise ReviewDecisionImmutableError(
                f"review decision {self.pk} is already recorded and cannot be changed"
            )
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        """Raise: recorded decisions cannot be deleted."""
        raise ReviewDecisionImmutableError(
            f"review decision {self.pk} is a permanent record and cannot be deleted"
        )
