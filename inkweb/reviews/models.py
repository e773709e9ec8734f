"""Review models: the append-only decision log and comments pinned to a slide location."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
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
    """One reviewer's decision on one run's restored slide.

    Rows are only ever inserted. A slide's review state is the newest decision on its
    newest succeeded run whose checksum matches that run's current output. The other rows
    are its history.
    """

    class Decision(models.TextChoices):
        """The outcomes of a review."""

        APPROVE = "approve", "Approved"
        REJECT = "reject", "Rejected"
        REWORK = "rework", "Needs rework"

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
    # SHA-256 of the run's restored.tiff when the decision was recorded, so a decision
    # names the exact output it judged even if the run's output is later replaced.
    output_sha256 = models.CharField(max_length=64, blank=True)
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


class SlideComment(models.Model):
    """A reviewer's remark pinned to one point of a slide, in level-0 pixels."""

    slide = models.ForeignKey("slides.Slide", on_delete=models.CASCADE, related_name="comments")
    # The run shown when the comment was written; None for a comment on the original only.
    run = models.ForeignKey(
        "runs.PipelineRun",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="comments",
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="slide_comments"
    )
    x = models.FloatField(validators=[MinValueValidator(0.0)])
    y = models.FloatField(validators=[MinValueValidator(0.0)])
    text = models.TextField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        """Oldest first, so a comment's position in the list is its marker number."""

        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["slide", "created_at", "id"], name="reviews_comment_slide")]

    def __str__(self) -> str:
        return f"comment {self.pk} on slide {self.slide_id} at ({self.x:.0f}, {self.y:.0f})"
