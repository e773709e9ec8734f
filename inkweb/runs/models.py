"""The PipelineRun model: one execution of the ink-removal pipeline on one slide."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class PipelineRun(models.Model):
    """A queued, running or finished pipeline run with its progress, outputs and report."""

    class Status(models.TextChoices):
        """Life cycle: queued, running, then succeeded, failed or cancelled."""

        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Kind(models.TextChoices):
        """A full run of the pipeline, or a revision that corrects regions of a parent's output."""

        FULL = "full", "Full run"
        REVISION = "revision", "Revision"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)
    RETRYABLE_STATUSES = (Status.FAILED, Status.CANCELLED)

    slide = models.ForeignKey("slides.Slide", on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # Fraction of the whole run done, 0 to 1, as reported by the pipeline.
    progress = models.FloatField(
        default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    stage = models.CharField(max_length=100, blank=True)
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)

    device = models.CharField(max_length=32, blank=True)
    options = models.JSONField(default=dict, blank=True)
    report = models.JSONField(null=True, blank=True)
    ink_found = models.BooleanField(null=True, blank=True)

    # Relative to INKWEB_STORAGE; filled when the run succeeds.
    output_dir = models.CharField(max_length=500, blank=True)
    restored_path = models.CharField(max_length=500, blank=True)
    mask_path = models.CharField(max_length=500, blank=True)
    report_path = models.CharField(max_length=500, blank=True)
    restored_sha256 = models.CharField(max_length=64, blank=True)
    mask_sha256 = models.CharField(max_length=64, blank=True)

    rq_job_id = models.CharField(max_length=100, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="requested_runs",
    )
    retry_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="retries"
    )

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.FULL)
    # A revision's output is its parent's output with `corrections` applied: rectangles in
    # level-0 pixels, each {x, y, width, height, action, method?} as pipeline.corrections reads.
    parent = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="revisions"
    )
    corrections = models.JSONField(default=list, blank=True)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        """Newest first; a slide has at most one queued or running run."""

        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["slide"],
                condition=models.Q(status__in=["queued", "running"]),
                name="runs_one_active_run_per_slide",
                violation_error_message="This slide already has a queued or running run.",
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of slide {self.slide_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        """True while the run is queued or running."""
        return self.status in self.ACTIVE_STATUSES

    def clean(self) -> None:
        """Require a parent and corrections on revisions and neither on full runs."""
        is_revision = self.kind == self.Kind.REVISION
        if is_revision and not self.corrections:
            raise ValidationError({"corrections": "A revision needs at least one correction."})
        if not is_revision and (self.parent_id is not None or self.corrections):
            raise ValidationError({"kind": "Only revisions have a parent and corrections."})
