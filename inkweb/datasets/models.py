"""Datasets of approved slides: a mutable draft, frozen versions and their exports.

A dataset's draft (DatasetMember rows) changes as reviewers add and remove slides.
Starting an export freezes the draft into the next DatasetVersion, whose member rows
record the exact run, restored-output checksum and approving decision of every slide.
Versions and their members are only ever inserted, like review decisions.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models


class DatasetVersionImmutableError(Exception):
    """Raised on any attempt to change or delete a frozen dataset version or its members."""


class InsertOnlyQuerySet(models.QuerySet):
    """QuerySet whose bulk update and delete raise: the rows are permanent records."""

    def update(self, **kwargs):  # noqa: D102
        raise DatasetVersionImmutableError(
            f"{self.model._meta.verbose_name_plural} are frozen; export a new version instead"
        )

    def delete(self):  # noqa: D102
        raise DatasetVersionImmutableError(
            f"{self.model._meta.verbose_name_plural} are permanent and cannot be deleted"
        )


class InsertOnlyModel(models.Model):
    """Base of models whose rows can be inserted but never changed or deleted."""

    objects = InsertOnlyQuerySet.as_manager()

    class Meta:
        """No table of its own."""

        abstract = True

    def save(self, *args, **kwargs) -> None:
        """Insert the row; saving a row that already exists raises."""
        if not self._state.adding:
            raise DatasetVersionImmutableError(
                f"{self._meta.verbose_name} {self.pk} is frozen and cannot be changed"
            )
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        """Raise: frozen rows cannot be deleted."""
        raise DatasetVersionImmutableError(
            f"{self._meta.verbose_name} {self.pk} is permanent and cannot be deleted"
        )


class Dataset(models.Model):
    """A named collection of approved slides for teaching; its draft is `members`."""

    name = models.CharField(max_length=100, unique=True)
    # Derived from the name; used in export folders and slide identifiers.
    slug = models.SlugField(max_length=50, unique=True)
    description = models.TextField(blank=True, max_length=4000)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="created_datasets",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        """Alphabetical."""

        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} (dataset {self.pk})"


class DatasetMember(models.Model):
    """A slide in a dataset's draft, which the next export freezes."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="members")
    slide = models.ForeignKey(
        "slides.Slide", on_delete=models.CASCADE, related_name="dataset_memberships"
    )
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        """In the order slides were added; a slide is in a draft at most once."""

        ordering = ["added_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "slide"],
                name="datasets_member_unique_slide",
                violation_error_message="This slide is already in the dataset.",
            ),
        ]

    def __str__(self) -> str:
        return f"slide {self.slide_id} in dataset {self.dataset_id}"


class DatasetVersion(InsertOnlyModel):
    """Version `number` (1, 2, ...) of a dataset, frozen when its export was requested."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        """Newest first; numbers are unique per dataset."""

        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "number"], name="datasets_version_unique_number"
            ),
        ]

    def __str__(self) -> str:
        return f"version {self.number} of dataset {self.dataset_id}"


class DatasetVersionMember(InsertOnlyModel):
    """One slide of a frozen version: the run, output checksum and approval it was frozen with."""

    version = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="members")
    # 1-based; the number at the end of the identifier.
    position = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    identifier = models.CharField(
        max_length=100,
        unique=True,
        validators=[RegexValidator(r"^[a-z0-9][a-z0-9_-]*$", "identifiers are lowercase slugs")],
    )
    slide = models.ForeignKey("slides.Slide", on_delete=models.PROTECT, related_name="+")
    run = models.ForeignKey("runs.PipelineRun", on_delete=models.PROTECT, related_name="+")
    restored_sha256 = models.CharField(
        max_length=64,
        validators=[RegexValidator(r"^[0-9a-f]{64}$", "sha256 must be 64 lowercase hex digits")],
    )
    review = models.ForeignKey("reviews.ReviewDecision", on_delete=models.PROTECT, related_name="+")

    class Meta:
        """In identifier order."""

        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "position"], name="datasets_version_member_position"
            ),
            models.UniqueConstraint(
                fields=["version", "slide"], name="datasets_version_member_slide"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.identifier} (slide {self.slide_id}, run {self.run_id})"


class DatasetExport(models.Model):
    """The export job of one version: its progress, output folder and manifest."""

    class Status(models.TextChoices):
        """Life cycle: queued, running, then succeeded, failed or cancelled."""

        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Target(models.TextChoices):
        """Destination of the files: the server's storage only, or also the object store."""

        SERVER = "server", "Server storage"
        OBJECT_STORE = "object_store", "Server storage and object store"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="exports")
    version = models.OneToOneField(DatasetVersion, on_delete=models.PROTECT, related_name="export")
    target = models.CharField(max_length=16, choices=Target.choices, default=Target.SERVER)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # Fraction of the whole export done, 0 to 1.
    progress = models.FloatField(
        default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    stage = models.CharField(max_length=100, blank=True)
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)

    # Relative to INKWEB_STORAGE, e.g. "exports/teaching-set/v2"; filled when it succeeds.
    output_dir = models.CharField(max_length=500, blank=True)
    # Names of the uploaded files in the object store, empty unless the target includes it.
    object_store_names = models.JSONField(default=list, blank=True)
    manifest = models.JSONField(null=True, blank=True)
    total_bytes = models.BigIntegerField(null=True, blank=True)

    rq_job_id = models.CharField(max_length=100, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="requested_exports",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        """Newest first; a dataset has at most one queued or running export."""

        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset"],
                condition=models.Q(status__in=["queued", "running"]),
                name="datasets_one_active_export",
                violation_error_message="This dataset already has a queued or running export.",
            ),
        ]

    def __str__(self) -> str:
        return f"export {self.pk} of dataset {self.dataset_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        """True while the export is queued or running."""
        return self.status in self.ACTIVE_STATUSES
