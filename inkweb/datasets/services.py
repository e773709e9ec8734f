"""Writes on datasets: create one, add and remove approved slides, start and cancel exports.

A slide may join a dataset only while it is approved: its latest review decision is
"approve" and names its latest succeeded run, whose restored output has a checksum.
Starting an export checks every draft member again, freezes the draft into the next
version and queues the export job on the ingest queue, which CPU workers serve.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.text import slugify
from redis.exceptions import RedisError

from inkweb.accounts.roles import Role, user_has_role
from inkweb.audit.models import AuditEvent
from inkweb.audit.services import audit_record
from inkweb.core.exceptions import ApplicationError, ConflictError, ForbiddenError, NotFoundError
from inkweb.core.queues import job_cancel, job_enqueue
from inkweb.datasets.cancellation import CANCEL_STOPPING_SUFFIX, export_cancel_flag_set
from inkweb.datasets.events import export_broadcast
from inkweb.datasets.models import (
    Dataset,
    DatasetExport,
    DatasetMember,
    DatasetVersion,
    DatasetVersionMember,
)
from inkweb.reviews.models import ReviewDecision
from inkweb.reviews.selectors import review_latest
from inkweb.runs.models import PipelineRun
from inkweb.runs.selectors import run_latest_succeeded
from inkweb.slides.models import Slide

logger = logging.getLogger(__name__)

SLUG_MAX_LENGTH = 50


@dataclass(frozen=True)
class Approval:
    """The approving decision of a slide and the run it approves."""

    run: PipelineRun
    review: ReviewDecision


def _require_reviewer(user: AbstractBaseUser, action: str) -> None:
    if not user_has_role(user, Role.REVIEWER):
        raise ForbiddenError(f"{action} needs the reviewer role; ask an administrator for it.")


def slide_approval_get(*, slide: Slide) -> Approval:
    """Return the approval that lets `slide` join a dataset, or raise ConflictError saying why not.

    Codes: slide_not_processed, slide_not_reviewed, slide_not_approved, approval_outdated
    and restored_output_missing.
    """
    latest_run = run_latest_succeeded(slide_id=slide.pk)
    if latest_run is None:
        raise ConflictError(
            f"Slide {slide.pk} ({slide.name}) has no succeeded run; remove its ink and have "
            "the result approved before adding it to a dataset.",
            code="slide_not_processed",
        )
    review = review_latest(slide_id=slide.pk)
    if review is None:
        raise ConflictError(
            f"Slide {slide.pk} ({slide.name}) has not been reviewed; a reviewer must approve "
            f"run {latest_run.pk} first.",
            code="slide_not_reviewed",
        )
    if review.decision != ReviewDecision.Decision.APPROVE:
        raise ConflictError(
            f"Slide {slide.pk} ({slide.name}) is not approved: its latest review decision is "
            f"'{review.get_decision_display()}' on run {review.run_id}. Only approved slides "
            "can join a dataset.",
            code="slide_not_approved",
        )
    if review.run_id != latest_run.pk:
        raise ConflictError(
            f"Slide {slide.pk} ({slide.name}) was approved on run {review.run_id}, but its "
            f"latest succeeded run is {latest_run.pk}; a reviewer must approve run "
            f"{latest_run.pk} first.",
            code="approval_outdated",
        )
    if not latest_run.restored_path or not latest_run.restored_sha256:
        raise ConflictError(
            f"Run {latest_run.pk} of slide {slide.pk} has no restored output on record; "
            "run ink removal again.",
            code="restored_output_missing",
        )
    return Approval(run=latest_run, review=review)


def dataset_create(*, name: str, description: str = "", created_by: AbstractBaseUser) -> Dataset:
    """Create an empty dataset; its slug (for folders and identifiers) comes from `name`.

    Raises ApplicationError for a name without letters or digits and ConflictError when
    the name, or a name with the same slug, is taken.
    """
    _require_reviewer(created_by, "Creating a dataset")
    name = " ".join(name.split())
    slug = slugify(name)[:SLUG_MAX_LENGTH].strip("-_")
    if not slug:
        raise ApplicationError(
            f"Dataset name {name!r} needs at least one letter or digit.", code="invalid_name"
        )
    existing = (
        Dataset.objects.filter(name__iexact=name).first()
        or Dataset.objects.filter(slug=slug).first()
    )
    if existing is not None:
        raise ConflictError(
            f"The name {name!r} is too close to the existing dataset {existing.name!r} "
            f"(both give the folder name {slug!r}); choose another name.",
            code="dataset_name_taken",
        )

    dataset = Dataset(name=name, slug=slug, description=description.strip(), created_by=created_by)
    dataset.full_clean()
    try:
        with transaction.atomic():
            dataset.save()
            audit_record(
                actor=created_by,
                action=AuditEvent.Action.DATASET_CREATE,
                target_type="dataset",
                target_id=dataset.pk,
                summary=f"Created dataset {name!r}.",
                details={"name": name, "slug": slug},
            )
    except IntegrityError:
        raise ConflictError(
            f"A dataset named {name!r} was created at the same time; choose another name.",
            code="dataset_name_taken",
        ) from None
    logger.info("Dataset %s (%s) created by user %s", dataset.pk, slug, created_by.pk)
    return dataset


def dataset_slide_add(
    *, dataset: Dataset, slide: Slide, added_by: AbstractBaseUser
) -> DatasetMember:
    """Add an approved slide to the dataset's draft.

    Raises ConflictError when the slide is not approved (see slide_approval_get) or is
    already in the draft (code slide_already_member).
    """
    _require_reviewer(added_by, "Changing a dataset")
    approval = slide_approval_get(slide=slide)
    if DatasetMember.objects.filter(dataset=dataset, slide=slide).exists():
        raise ConflictError(
            f"Slide {slide.pk} ({slide.name}) is already in dataset {dataset.name!r}.",
            code="slide_already_member",
        )

    member = DatasetMember(dataset=dataset, slide=slide, added_by=added_by)
    try:
        with transaction.atomic():
            member.save()
            _touch(dataset)
            audit_record(
                actor=added_by,
                action=AuditEvent.Action.DATASET_CHANGE,
                target_type="dataset",
                target_id=dataset.pk,
                slide_id=slide.pk,
                summary=f"Added slide {slide.pk} to dataset {dataset.name!r}.",
                details={
                    "change": "add",
                    "run_id": approval.run.pk,
                    "review_id": approval.review.pk,
                },
            )
    except IntegrityError:
        raise ConflictError(
            f"Slide {slide.pk} ({slide.name}) is already in dataset {dataset.name!r}.",
            code="slide_already_member",
        ) from None
    logger.info("Slide %s added to dataset %s by user %s", slide.pk, dataset.pk, added_by.pk)
    return member


def dataset_slide_remove(*, dataset: Dataset, slide: Slide, removed_by: AbstractBaseUser) -> None:
    """Remove a slide from the dataset's draft; exported versions keep it.

    Raises NotFoundError when the slide is not in the draft.
    """
    _require_reviewer(removed_by, "Changing a dataset")
    with transaction.atomic():
        deleted, _ = DatasetMember.objects.filter(dataset=dataset, slide=slide).delete()
        if not deleted:
            raise NotFoundError(
                f"Slide {slide.pk} is not in the draft of dataset {dataset.name!r}.",
                code="slide_not_member",
            )
        _touch(dataset)
        audit_record(
            actor=removed_by,
            action=AuditEvent.Action.DATASET_CHANGE,
            target_type="dataset",
            target_id=dataset.pk,
            slide_id=slide.pk,
            summary=f"Removed slide {slide.pk} from dataset {dataset.name!r}.",
            details={"change": "remove"},
        )
    logger.info("Slide %s removed from dataset %s by user %s", slide.pk, dataset.pk, removed_by.pk)


def _touch(dataset: Dataset) -> None:
    Dataset.objects.filter(pk=dataset.pk).update(updated_at=timezone.now())


def identifier_for(*, slug: str, version: int, position: int) -> str:
    """Return the identifier of a slide in an export, e.g. "teaching-set-v2-0007"."""
    return f"{slug}-v{version}-{position:04d}"


def dataset_export(
    *, dataset: Dataset, requested_by: AbstractBaseUser, target: str = DatasetExport.Target.SERVER
) -> DatasetExport:
    """Freeze the draft into the next version and queue its export once committed.

    Every draft member must still be approved. Raises ConflictError when the draft is
    empty (dataset_empty), a member is no longer approved (members_not_approved), an
    export of the dataset is active (export_already_active) or the object store is
    requested but not configured (object_store_not_configured).
    """
    _require_reviewer(requested_by, "Exporting a dataset")
    if target not in DatasetExport.Target.values:
        raise ApplicationError(
            f"Unknown export target {target!r}; use {' or '.join(DatasetExport.Target.values)}.",
            code="invalid_target",
        )
    if target == DatasetExport.Target.OBJECT_STORE and settings.INKWEB_EXPORT_STORAGE is None:
        raise ConflictError(
            "No object store is configured; set INKWEB_EXPORT_STORAGE on the server, or "
            "export to the server's storage only.",
            code="object_store_not_configured",
        )

    try:
        with transaction.atomic():
            export = _freeze_and_create(dataset, requested_by, target)
            transaction.on_commit(lambda: _export_enqueue(export))
    except IntegrityError:
        # A concurrent request froze the same version number or started an export.
        raise ConflictError(
            f"Dataset {dataset.name!r} already has a queued or running export.",
            code="export_already_active",
        ) from None
    logger.info(
        "Export %s of dataset %s version %s requested by user %s",
        export.pk,
        dataset.pk,
        export.version.number,
        requested_by.pk,
    )
    return export


def _freeze_and_create(
    dataset: Dataset, requested_by: AbstractBaseUser, target: str
) -> DatasetExport:
    # The row lock serialises exports of one dataset on PostgreSQL; SQLite's write
    # transactions are serialised anyway.
    dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
    if DatasetExport.objects.filter(
        dataset=dataset, status__in=DatasetExport.ACTIVE_STATUSES
    ).exists():
        raise ConflictError(
            f"Dataset {dataset.name!r} already has a queued or running export; wait for it "
            "or cancel it.",
            code="export_already_active",
        )
    members = list(dataset.members.select_related("slide").order_by("added_at", "id"))
    if not members:
        raise ConflictError(
            f"Dataset {dataset.name!r} has no slides; add approved slides before exporting.",
            code="dataset_empty",
        )
    approvals, problems = [], []
    for member in members:
        try:
            approvals.append((member.slide, slide_approval_get(slide=member.slide)))
        except ConflictError as error:
            problems.append(error.detail)
    if problems:
        raise ConflictError(
            f"{len(problems)} slide(s) of dataset {dataset.name!r} can no longer be exported: "
            f"{' '.join(problems)} Remove them from the dataset or have them approved again.",
            code="members_not_approved",
        )

    number = (dataset.versions.aggregate(highest=Max("number"))["highest"] or 0) + 1
    version = DatasetVersion(dataset=dataset, number=number, created_by=requested_by)
    version.full_clean()
    version.save()
    frozen = []
    for position, (slide, approval) in enumerate(approvals, start=1):
        member = DatasetVersionMember(
            version=version,
            position=position,
            identifier=identifier_for(slug=dataset.slug, version=number, position=position),
            slide=slide,
            run=approval.run,
            restored_sha256=approval.run.restored_sha256,
            review=approval.review,
        )
        member.full_clean()
        frozen.append(member)
    DatasetVersionMember.objects.bulk_create(frozen)

    export = DatasetExport(
        dataset=dataset, version=version, target=target, requested_by=requested_by
    )
    export.full_clean()
    export.save()
    export.rq_job_id = f"export-{export.pk}"
    export.save(update_fields=["rq_job_id"])
    audit_record(
        actor=requested_by,
        action=AuditEvent.Action.EXPORT_START,
        target_type="export",
        target_id=export.pk,
        summary=f"Started the export of version {number} of dataset {dataset.name!r} "
        f"({len(frozen)} slides).",
        details={
            "dataset_id": dataset.pk,
            "version": number,
            "slides": len(frozen),
            "target": target,
        },
    )
    return export


def _export_enqueue(export: DatasetExport) -> None:
    """Queue the export's job; an export that cannot be queued is marked failed with the reason."""
    try:
        job_enqueue(
            queue=settings.INKWEB_INGEST_QUEUE,
            func="inkweb.datasets.jobs.dataset_export_job",
            job_id=export.rq_job_id,
            timeout_s=settings.INKWEB_EXPORT_TIMEOUT_SECONDS,
            export_id=export.pk,
        )
    except RedisError as error:
        logger.error("Export %s could not be queued: %s", export.pk, error)
        DatasetExport.objects.filter(pk=export.pk, status=DatasetExport.Status.QUEUED).update(
            status=DatasetExport.Status.FAILED,
            error=f"The export could not be queued: Redis is unreachable ({error}). "
            "Export again later.",
            finished_at=timezone.now(),
            updated_at=timezone.now(),
        )
        return
    export_broadcast(export)


def export_cancel(*, export: DatasetExport, cancelled_by: AbstractBaseUser) -> DatasetExport:
    """Cancel a queued or running export; the row's status is "cancelled" at once.

    A queued export's job is removed from the queue. For a running export a Redis flag
    is set as well. The worker's progress callback checks the flag and the row's status,
    raises ExportCancelled and removes the partial files.
    """
    _require_reviewer(cancelled_by, "Cancelling an export")
    now = timezone.now()
    was_status = None
    with transaction.atomic():
        for status in DatasetExport.ACTIVE_STATUSES:
            suffix = (
                " before it started."
                if status == DatasetExport.Status.QUEUED
                else CANCEL_STOPPING_SUFFIX
            )
            if DatasetExport.objects.filter(pk=export.pk, status=status).update(
                status=DatasetExport.Status.CANCELLED,
                message=f"Cancelled by {cancelled_by.get_username()}{suffix}",
                finished_at=now,
                updated_at=now,
            ):
                was_status = status
                break
        if was_status is not None:
            audit_record(
                actor=cancelled_by,
                action=AuditEvent.Action.EXPORT_FINISH,
                target_type="export",
                target_id=export.pk,
                summary=f"Cancelled export {export.pk} while it was {was_status}.",
                details={"status": DatasetExport.Status.CANCELLED, "was": was_status},
            )

    export.refresh_from_db()
    if was_status is None:
        raise ConflictError(
            f"Export {export.pk} has status {export.status}; only queued or running exports "
            "can be cancelled.",
            code="export_not_active",
        )
    if was_status == DatasetExport.Status.RUNNING:
        export_cancel_flag_set(export_id=export.pk)
    elif export.rq_job_id:
        job_cancel(job_id=export.rq_job_id)
    logger.info("Export %s cancelled by user %s while %s", export.pk, cancelled_by.pk, was_status)
    export_broadcast(export)
    return export
