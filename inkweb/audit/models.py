"""The AuditEvent model: one append-only row per action that changes the record."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEventImmutableError(Exception):
    """Raised on any attempt to change or delete a recorded audit event."""


class AuditEventQuerySet(models.QuerySet):
    """QuerySet whose bulk update and delete raise: the audit log is append-only."""

    def update(self, **kwargs):  # noqa: D102
        raise AuditEventImmutableError("audit events are append-only and cannot be updated")

    def delete(self):  # noqa: D102
        raise AuditEventImmutableError("audit events are append-only and cannot be deleted")


class AuditEvent(models.Model):
    """One action: its actor, time, verb, the object it touched and free-form details.

    ``target_type`` and ``target_id`` name the object ("slide", 12); ``slide`` is set
    whenever the action concerns one slide, so a slide's history is one indexed query.
    """

    class Action(models.TextChoices):
        """Every action the audit log records."""

        SLIDE_UPLOAD = "slide.upload", "Slide uploaded"
        SLIDE_IMPORT = "slide.import", "Slide imported"
        SLIDE_DELETE = "slide.delete", "Slide deleted"
        RUN_CREATE = "run.create", "Run requested"
        RUN_CANCEL = "run.cancel", "Run cancelled"
        RUN_RETRY = "run.retry", "Run retried"
        RUN_FINISH = "run.finish", "Run finished"
        REVIEW_DECISION = "review.decision", "Review decision"
        REGION_CORRECTION = "run.correction", "Region correction"
        COMMENT_CREATE = "comment.create", "Comment added"
        DATASET_CREATE = "dataset.create", "Dataset created"
        DATASET_CHANGE = "dataset.change", "Dataset changed"
        EXPORT_START = "export.start", "Export started"
        EXPORT_FINISH = "export.finish", "Export finished"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_events",
    )
    # Kept beside the foreign key so the row still names the actor if the account goes.
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    target_type = models.CharField(max_length=32)
    target_id = models.PositiveBigIntegerField(null=True, blank=True)
    slide = models.ForeignKey(
        "slides.Slide",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_events",
    )
    summary = models.CharField(max_length=500)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        """Newest first."""

        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_target")]

    def __str__(self) -> str:
        return f"{self.action} {self.target_type} {self.target_id} by {self.actor_name or '-'}"

    def save(self, *args, **kwargs) -> None:
        """Insert the event; saving a row that already exists raises."""
        if not self._state.adding:
            raise AuditEventImmutableError(f"audit event {self.pk} cannot be changed")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        """Raise: recorded events cannot be deleted."""
        raise AuditEventImmutableError(f"audit event {self.pk} cannot be deleted")
