"""The Slide model: one stored original file and the metadata read from it."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models


class Slide(models.Model):
    """A whole-slide image whose original file is stored read-only and never modified."""

    class IngestStatus(models.TextChoices):
        """Whether the stored file has been read (metadata and thumbnail)."""

        PENDING = "pending", "Ingesting"
        READY = "ready", "Ready"
        FAILED = "failed", "Ingest failed"

    name = models.CharField(max_length=255)
    original_filename = models.CharField(max_length=255)
    # Relative to INKWEB_STORAGE, e.g. "originals/ab/<sha256>/slide.svs".
    original_path = models.CharField(max_length=500)
    file_size_bytes = models.BigIntegerField(validators=[MinValueValidator(1)])
    sha256 = models.CharField(
        max_length=64,
        unique=True,
        validators=[RegexValidator(r"^[0-9a-f]{64}$", "sha256 must be 64 lowercase hex digits")],
    )

    format = models.CharField(max_length=50, blank=True)
    reader = models.CharField(max_length=50, blank=True)
    # Level-0 size in pixels, with the file's orientation applied.
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    level_count = models.PositiveSmallIntegerField(null=True, blank=True)
    mpp_x = models.FloatField("µm per pixel (x)", null=True, blank=True)
    mpp_y = models.FloatField("µm per pixel (y)", null=True, blank=True)
    associated_images = models.JSONField(default=list, blank=True)
    info = models.JSONField(default=dict, blank=True)
    thumbnail_path = models.CharField(max_length=500, blank=True)

    ingest_status = models.CharField(
        max_length=16, choices=IngestStatus.choices, default=IngestStatus.PENDING
    )
    ingest_error = models.TextField(blank=True)
    ingested_at = models.DateTimeField(null=True, blank=True)

    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="uploaded_slides",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        """Newest uploads first."""

        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} (slide {self.pk})"
