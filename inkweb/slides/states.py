"""The combined state of a slide shown in the list: ingest, latest run and latest review."""

from __future__ import annotations

from django.db import models


class SlideState(models.TextChoices):
    """One label per slide, in the order of the list's filter tabs."""

    INGESTING = "ingesting", "Ingesting"
    INGEST_FAILED = "ingest_failed", "Ingest failed"
    NEW = "new", "Not processed"
    PROCESSING = "processing", "Processing"
    RUN_FAILED = "run_failed", "Run failed"
    CANCELLED = "cancelled", "Cancelled"
    TO_REVIEW = "to_review", "To review"
    NEEDS_REWORK = "needs_rework", "Needs rework"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
