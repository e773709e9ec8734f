"""Writes on slides: store an upload or an imported file, ingest it, delete it.

A new file is first written to incoming/<random>/ while its SHA-256 is computed, then
probed with the pipeline reader (open it and decode a small thumbnail). A file that fails
the probe is deleted with its folder before the error is raised, so a rejected upload
leaves no file and no database row. An accepted file is moved to
originals/<sha[:2]>/<sha>/<name>, set to mode 0444, and never written again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import get_valid_filename
from redis.exceptions import RedisError

from inkweb.audit.models import AuditEvent
from inkweb.audit.services import audit_record
from inkweb.core.broadcast import ALL_ACTIVITY_GROUP, broadcast_send, slide_group
from inkweb.core.exceptions import ConflictError, ForbiddenError
from inkweb.core.queues import job_enqueue
from inkweb.core.storage import (
    storage_absolute,
    storage_make_read_only,
    storage_relative,
    storage_root,
)
from inkweb.runs.models import PipelineRun
from inkweb.slides.errors import SlideDuplicateError, SlideRejectedError, SlideTooLargeError
from inkweb.slides.models import Slide
from pipeline import open_slide
from pipeline.errors import InkRemovalError

logger = logging.getLogger(__name__)

THUMBNAIL_MAX_SIZE = 512
PROBE_THUMBNAIL_SIZE = 64
_COPY_CHUNK_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class StagedFile:
    """A file written to incoming/ with its checksum, waiting for the probe."""

    path: Path
    display_name: str
    sha256: str
    size_bytes: int


def _safe_filename(name: str) -> str:
    base = Path(name).name
    try:
        safe = get_valid_filename(base)
    except SuspiciousFileOperation:  # raised for names such as ".."
        safe = ""
    return safe[:200] or "slide"


def _stage_chunks(*, chunks: Iterable[bytes], filename: str) -> StagedFile:
    """Write `chunks` to a fresh incoming folder, hashing and size-checking on the way."""
    folder = storage_root() / "incoming" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    path = folder / _safe_filename(filename)
    hasher = hashlib.sha256()
    size = 0
    limit = settings.INKWEB_MAX_UPLOAD_BYTES
    try:
        with open(path, "xb") as handle:
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise SlideTooLargeError(
                        f"{filename} is larger than the limit of {limit} bytes "
                        "(INKWEB_MAX_UPLOAD_BYTES); ask an administrator to raise it."
                    )
                hasher.update(chunk)
                handle.write(chunk)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if size == 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise SlideRejectedError(f"{filename} is empty; choose the slide file again.")
    return StagedFile(path=path, display_name=filename, sha256=hasher.hexdigest(), size_bytes=size)


def _stage_spooled_file(*, spooled: Path, filename: str) -> StagedFile:
    """Hash Django's spooled upload and move it into a fresh incoming folder (no copy)."""
    size = spooled.stat().st_size
    if size == 0:
        raise SlideRejectedError(f"{filename} is empty; choose the slide file again.")
    hasher = hashlib.sha256()
    for chunk in _read_chunks(spooled):
        hasher.update(chunk)
    folder = storage_root() / "incoming" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    path = folder / _safe_filename(filename)
    try:
        shutil.move(spooled, path)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return StagedFile(path=path, display_name=filename, sha256=hasher.hexdigest(), size_bytes=size)


def _read_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(_COPY_CHUNK_BYTES):
            yield chunk


def _reader_message(error: BaseException, *, path: Path, display_name: str) -> str:
    # Pipeline messages name the file by its stored path. Users know it by its own name,
    # and the storage layout of the server must not leak to them.
    # SlideReadError has the bare reason in `reason`, because its str() repeats the file name.
    message = getattr(error, "reason", None) or str(error) or type(error).__name__
    message = message.replace(str(path), display_name).replace(path.name, display_name)
    return message.removeprefix(f"{display_name}: ")


def slide_probe(*, path: Path, display_name: str) -> None:
    """Open `path` with the pipeline reader and decode a small thumbnail.

    Raises SlideRejectedError with the reader's reason. Decoding pixels, not only the
    header, catches files that open but whose tiles are corrupt.
    """
    try:
        with open_slide(path) as reader:
            reader.thumbnail(max_size=PROBE_THUMBNAIL_SIZE)
    except InkRemovalError as error:
        reason = _reader_message(error, path=path, display_name=display_name)
        raise SlideRejectedError(f"{display_name} was rejected: {reason}") from error
    except Exception as error:  # a reader library failing on hostile input must not be a 500
        logger.warning("Unexpected reader error on %s: %r", display_name, error)
        reason = _reader_message(error, path=path, display_name=display_name)
        raise SlideRejectedError(
            f"{display_name} was rejected: it could not be decoded as a slide ({reason})."
        ) from error


def _store_staged(
    *, staged: StagedFile, name: str, uploaded_by: AbstractBaseUser | None, action: str
) -> Slide:
    """Probe, de-duplicate, move into originals/ and create the Slide row.

    The new row is recorded in the audit log as `action` (upload or import). On any
    failure the staged file (and a moved copy) is removed before the error is raised.
    """
    final_path: Path | None = None
    try:
        slide_probe(path=staged.path, display_name=staged.display_name)

        existing = Slide.objects.filter(sha256=staged.sha256).only("id", "name").first()
        if existing is not None:
            raise SlideDuplicateError(
                f"{staged.display_name} is already stored as slide {existing.pk} "
                f"({existing.name!r}); open that slide instead.",
                existing_slide_id=existing.pk,
            )

        folder = storage_root() / "originals" / staged.sha256[:2] / staged.sha256
        folder.mkdir(parents=True, exist_ok=True)
        final_path = folder / staged.path.name
        os.replace(staged.path, final_path)
        storage_make_read_only(final_path)

        slide = Slide(
            name=(name.strip() or Path(staged.display_name).stem)[:255],
            original_filename=staged.display_name[:255],
            original_path=storage_relative(final_path),
            file_size_bytes=staged.size_bytes,
            sha256=staged.sha256,
            uploaded_by=uploaded_by,
        )
        slide.full_clean()
        try:
            with transaction.atomic():
                slide.save()
                _audit_stored(slide, action=action, uploaded_by=uploaded_by)
        except IntegrityError:
            # Another request stored the same file between the check above and this insert.
            existing = Slide.objects.get(sha256=staged.sha256)
            raise SlideDuplicateError(
                f"{staged.display_name} is already stored as slide {existing.pk}.",
                existing_slide_id=existing.pk,
            ) from None
    except BaseException:
        if final_path is not None:
            final_path.unlink(missing_ok=True)
            _remove_empty_parents(final_path.parent, stop=storage_root() / "originals")
        raise
    finally:
        shutil.rmtree(staged.path.parent, ignore_errors=True)

    logger.info("Stored slide %s (%s, sha256 %s)", slide.pk, slide.original_filename, slide.sha256)
    return slide


def _audit_stored(slide: Slide, *, action: str, uploaded_by: AbstractBaseUser | None) -> None:
    actor_name = uploaded_by.get_username() if uploaded_by is not None else "The system"
    verb = "uploaded" if action == AuditEvent.Action.SLIDE_UPLOAD else "imported"
    audit_record(
        actor=uploaded_by,
        action=action,
        target_type="slide",
        target_id=slide.pk,
        summary=f"{actor_name} {verb} {slide.original_filename} as slide {slide.pk}.",
        slide_id=slide.pk,
        details={
            "filename": slide.original_filename,
            "sha256": slide.sha256,
            "size_bytes": slide.file_size_bytes,
        },
    )


def _remove_empty_parents(folder: Path, *, stop: Path) -> None:
    while folder != stop and folder.is_relative_to(stop):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def slide_ingest_enqueue(*, slide: Slide) -> None:
    """Queue the ingest job of `slide`; without Redis the slide is marked failed instead."""
    try:
        job_enqueue(
            queue=settings.INKWEB_INGEST_QUEUE,
            func="inkweb.slides.jobs.slide_ingest_job",
            job_id=f"ingest-slide-{slide.pk}",
            timeout_s=settings.INKWEB_INGEST_TIMEOUT_SECONDS,
            slide_id=slide.pk,
        )
    except RedisError as error:
        logger.error("Ingest of slide %s could not be queued: %s", slide.pk, error)
        _ingest_fail(
            slide,
            f"The ingest could not be queued because Redis is unreachable ({error}). "
            "Delete this slide and upload it again once the server is healthy.",
        )


def slide_upload(
    *, uploaded_file: UploadedFile, uploaded_by: AbstractBaseUser, name: str = ""
) -> Slide:
    """Validate and store an uploaded slide, then queue its ingest once the row is committed."""
    filename = uploaded_file.name or "slide"
    if uploaded_file.size is not None and uploaded_file.size > settings.INKWEB_MAX_UPLOAD_BYTES:
        raise SlideTooLargeError(
            f"{filename} ({uploaded_file.size} bytes) is larger than the limit of "
            f"{settings.INKWEB_MAX_UPLOAD_BYTES} bytes (INKWEB_MAX_UPLOAD_BYTES)."
        )

    spooled = getattr(uploaded_file, "temporary_file_path", None)
    if spooled is not None:
        staged = _stage_spooled_file(spooled=Path(spooled()), filename=filename)
    else:
        chunks = uploaded_file.chunks(_COPY_CHUNK_BYTES)
        staged = _stage_chunks(chunks=chunks, filename=filename)
    with transaction.atomic():
        slide = _store_staged(
            staged=staged, name=name, uploaded_by=uploaded_by, action=AuditEvent.Action.SLIDE_UPLOAD
        )
        transaction.on_commit(lambda: slide_ingest_enqueue(slide=slide))
    return slide


def slide_import(
    *, path: Path, imported_by: AbstractBaseUser | None = None, ingest_now: bool = True
) -> Slide:
    """Copy a slide file from the server's disk into storage and ingest it.

    With `ingest_now` the ingest runs in this process (no worker needed); otherwise it is
    queued. Raises SlideRejectedError or SlideDuplicateError like an upload.
    """
    path = Path(path)
    if not path.is_file():
        raise SlideRejectedError(f"{path} is not a file.")
    staged = _stage_chunks(chunks=_read_chunks(path), filename=path.name)
    slide = _store_staged(
        staged=staged,
        name=path.stem,
        uploaded_by=imported_by,
        action=AuditEvent.Action.SLIDE_IMPORT,
    )
    if ingest_now:
        return slide_ingest(slide_id=slide.pk)
    slide_ingest_enqueue(slide=slide)
    return slide


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    hasher = hashlib.sha256()
    for chunk in _read_chunks(path):
        hasher.update(chunk)
    return hasher.hexdigest()


def _ingest_fail(slide: Slide, message: str) -> Slide:
    slide.ingest_status = Slide.IngestStatus.FAILED
    slide.ingest_error = message
    slide.save(update_fields=["ingest_status", "ingest_error", "updated_at"])
    logger.warning("Ingest of slide %s failed: %s", slide.pk, message)
    return slide


def slide_ingest(*, slide_id: int) -> Slide:
    """Read metadata and a thumbnail of a stored slide and verify its checksum.

    A slide that cannot be read is marked failed with the reason (returned, not raised),
    so the job succeeds and the user sees the message and can delete the slide.
    """
    slide = Slide.objects.get(pk=slide_id)
    path = storage_absolute(slide.original_path)
    logger.info("Ingest of slide %s started (%s)", slide.pk, slide.original_filename)

    if not path.is_file():
        return _ingest_fail(slide, f"The stored file of {slide.original_filename} is missing.")
    if file_sha256(path) != slide.sha256:
        return _ingest_fail(
            slide, f"The stored file of {slide.original_filename} no longer matches its checksum."
        )

    try:
        with open_slide(path) as reader:
            info = reader.info
            thumbnail = reader.thumbnail(max_size=THUMBNAIL_MAX_SIZE)
    except Exception as error:  # reader errors of any library become the slide's error
        if not isinstance(error, InkRemovalError):
            logger.exception("Unexpected reader error while ingesting slide %s", slide.pk)
        reason = _reader_message(error, path=path, display_name=slide.original_filename)
        return _ingest_fail(slide, f"{slide.original_filename} could not be read: {reason}")

    thumbnail_path = storage_root() / "thumbnails" / f"slide-{slide.pk}.png"
    temporary = thumbnail_path.with_suffix(".png.partial")
    thumbnail.convert("RGB").save(temporary, format="PNG")
    os.replace(temporary, thumbnail_path)

    slide.format = str(info.format)[:50]
    slide.reader = str(info.reader)[:50]
    slide.width = int(info.width)
    slide.height = int(info.height)
    slide.level_count = int(info.level_count)
    slide.mpp_x = info.mpp_x
    slide.mpp_y = info.mpp_y
    slide.associated_images = list(info.associated_images)
    slide.info = info.to_dict()
    slide.thumbnail_path = storage_relative(thumbnail_path)
    slide.ingest_status = Slide.IngestStatus.READY
    slide.ingest_error = ""
    slide.ingested_at = timezone.now()
    slide.full_clean()
    slide.save()

    logger.info(
        "Ingest of slide %s finished: %s %dx%d, %d levels, mpp %s",
        slide.pk,
        slide.format,
        slide.width,
        slide.height,
        slide.level_count,
        slide.mpp_x,
    )
    return slide


def slide_broadcast_updated(*, slide_id: int) -> None:
    """Tell open pages that a slide's row changed (ingest finished or failed)."""
    broadcast_send(
        groups=[ALL_ACTIVITY_GROUP, slide_group(slide_id)],
        message={"type": "slide.updated", "slide_id": slide_id},
    )


def slide_delete(*, slide: Slide, deleted_by: AbstractBaseUser) -> None:
    """Delete a slide without review decisions, with its stored files and run outputs.

    Only staff and the user who uploaded the slide may delete it.
    """
    if not (deleted_by.is_staff or deleted_by.pk == slide.uploaded_by_id):
        raise ForbiddenError(
            f"Only the uploader of slide {slide.pk} or an administrator can delete it."
        )
    if slide.review_decisions.exists():
        raise ConflictError(
            f"Slide {slide.pk} has review decisions, which are permanent records; "
            "it cannot be deleted.",
            code="slide_has_reviews",
        )
    if slide.runs.filter(status__in=PipelineRun.ACTIVE_STATUSES).exists():
        raise ConflictError(
            f"Slide {slide.pk} has a queued or running run; cancel it first.",
            code="slide_busy",
        )

    slide_id = slide.pk
    original = storage_absolute(slide.original_path)
    thumbnail = storage_absolute(slide.thumbnail_path) if slide.thumbnail_path else None
    outputs = storage_root() / "outputs" / f"slide-{slide_id}"
    with transaction.atomic():
        audit_record(
            actor=deleted_by,
            action=AuditEvent.Action.SLIDE_DELETE,
            target_type="slide",
            target_id=slide_id,
            summary=(
                f"{deleted_by.get_username()} deleted slide {slide_id} "
                f"({slide.original_filename})."
            ),
            # The slide link would be cleared by the delete, so the id is kept in details.
            details={
                "slide_id": slide_id,
                "filename": slide.original_filename,
                "sha256": slide.sha256,
            },
        )
        slide.delete()

    original.unlink(missing_ok=True)
    _remove_empty_parents(original.parent, stop=storage_root() / "originals")
    if thumbnail is not None:
        thumbnail.unlink(missing_ok=True)
    shutil.rmtree(outputs, ignore_errors=True)
    logger.info("Deleted slide %s and its files, requested by user %s", slide_id, deleted_by.pk)
