"""Execution of an export job inside a worker: write and verify each slide, then the manifest.

Files are written to a hidden ``.v<N>.partial`` folder beside the final one and renamed
to ``exports/<dataset-slug>/v<N>/`` when every file is complete and verified, so the
final folder never contains a partial export. A failed or cancelled export leaves no files.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Replace
from django.utils import timezone

from inkweb.audit.models import AuditEvent
from inkweb.audit.services import audit_record
from inkweb.core.storage import (
    storage_absolute,
    storage_make_read_only,
    storage_relative,
    storage_root,
)
from inkweb.datasets.cancellation import (
    CANCEL_STOPPED_SUFFIX,
    CANCEL_STOPPING_SUFFIX,
    export_cancel_flag_clear,
)
from inkweb.datasets.events import export_broadcast
from inkweb.datasets.manifests import (
    manifest_build,
    manifest_json_text,
    manifest_slide_entry,
    manifest_write,
)
from inkweb.datasets.models import DatasetExport, DatasetVersionMember
from inkweb.datasets.object_store import export_object_delete, export_upload
from inkweb.datasets.progress import SLIDES_SHARE, ExportProgressReporter
from inkweb.slides.models import Slide
from pipeline.errors import InkRemovalError
from pipeline.export import ExportCancelled, ExportError, export_slide
from pipeline.report import sha256_file

logger = logging.getLogger(__name__)

# Names shorter than this are not searched for in exported bytes: a short string such
# as "S12" also occurs by chance in compressed pixel data.
# NOTE: a display name or file stem under 6 characters is therefore not checked.
MIN_SEARCHED_NAME_LENGTH = 6


def export_folder(export: DatasetExport) -> Path:
    """Return the final folder of an export: INKWEB_STORAGE/exports/<slug>/v<N>."""
    return storage_root() / "exports" / export.dataset.slug / f"v{export.version.number}"


def original_names(slide: Slide) -> list[str]:
    """Return the names of a slide that must not appear in its export: file name, stem, title."""
    candidates = {slide.original_filename, Path(slide.original_filename).stem, slide.name}
    return sorted(name for name in candidates if len(name) >= MIN_SEARCHED_NAME_LENGTH)


def export_execute(*, export_id: int) -> DatasetExport:
    """Execute a queued export in this process.

    Claims the export (queued to running) so that a cancelled or already claimed one is
    skipped. Export, read and upload errors mark it failed with the message. Any other
    exception is recorded, then re-raised so that the worker logs it and RQ keeps the job.
    """
    now = timezone.now()
    claimed = DatasetExport.objects.filter(pk=export_id, status=DatasetExport.Status.QUEUED).update(
        status=DatasetExport.Status.RUNNING,
        started_at=now,
        updated_at=now,
        progress=0.0,
        stage="starting",
        message="",
        error="",
    )
    export = DatasetExport.objects.select_related("dataset", "version", "version__created_by").get(
        pk=export_id
    )
    if not claimed:
        logger.info("Export %s has status %s, not queued; skipping it", export_id, export.status)
        return export

    export_broadcast(export)
    reporter = ExportProgressReporter(
        export_id=export.pk,
        dataset_id=export.dataset_id,
        interval_s=settings.INKWEB_PROGRESS_INTERVAL_SECONDS,
    )
    final = export_folder(export)
    partial = final.with_name(f".{final.name}.partial")
    logger.info("Export %s of dataset %s started", export.pk, export.dataset_id)
    try:
        _execute(export, reporter, partial=partial, final=final)
    except ExportCancelled:
        logger.info("Export %s stopped after cancellation", export.pk)
        _finish(
            export,
            from_statuses=(DatasetExport.Status.RUNNING, DatasetExport.Status.CANCELLED),
            status=DatasetExport.Status.CANCELLED,
            audit=False,
            message=_stopped_message(),
        )
    except (InkRemovalError, OSError) as error:
        logger.warning("Export %s failed: %s", export.pk, error)
        _finish(export, status=DatasetExport.Status.FAILED, error=str(error)[:4000])
    except Exception as error:
        logger.exception("Export %s failed with an unexpected error", export.pk)
        _finish(
            export,
            status=DatasetExport.Status.FAILED,
            error=f"Unexpected error: {error}. The worker log has the traceback.",
        )
        raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        export_cancel_flag_clear(export_id=export.pk)
        export.refresh_from_db()
        export_broadcast(export)
    return export


def _execute(
    export: DatasetExport, reporter: ExportProgressReporter, *, partial: Path, final: Path
) -> None:
    if final.exists():
        raise ExportError(
            f"{storage_relative(final)} already exists in the storage; move it away and "
            "export again."
        )
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    manifest = _write_files(export, reporter, partial)

    uploaded: list[str] = []
    if export.target == DatasetExport.Target.OBJECT_STORE:
        files = sorted(path for path in partial.iterdir() if not path.name.startswith("."))
        uploaded = export_upload(
            files=files,
            prefix=f"{export.dataset.slug}/v{export.version.number}",
            on_file=lambda index, count, name: reporter.report(
                SLIDES_SHARE + (1 - SLIDES_SHARE) * (0.5 + 0.5 * index / count),
                "upload",
                f"uploading {name} ({index + 1} of {count})",
                force=True,
            ),
        )

    os.replace(partial, final)
    for path in final.iterdir():
        storage_make_read_only(path)
    count = manifest["slide_count"]
    finished = _finish(
        export,
        status=DatasetExport.Status.SUCCEEDED,
        progress=1.0,
        stage="finished",
        message=f"Exported {count} slide{'s' if count != 1 else ''}.",
        output_dir=storage_relative(final),
        manifest=manifest,
        total_bytes=_folder_bytes(final),
        object_store_names=uploaded,
    )
    if not finished:
        # Cancelled after the last progress check: keep the record and the files consistent.
        shutil.rmtree(final, ignore_errors=True)
        export_object_delete(uploaded)
        DatasetExport.objects.filter(pk=export.pk, status=DatasetExport.Status.CANCELLED).update(
            message=_stopped_message(), updated_at=timezone.now()
        )
        logger.info("Export %s was cancelled as it finished; its files were removed", export.pk)


def _write_files(
    export: DatasetExport, reporter: ExportProgressReporter, folder: Path
) -> dict[str, Any]:
    members = list(
        DatasetVersionMember.objects.filter(version=export.version)
        .select_related("slide", "run", "review__reviewer")
        .order_by("position")
    )
    entries, results = [], []
    for index, member in enumerate(members):
        reporter.report(
            SLIDES_SHARE * index / len(members),
            "checksum",
            f"{member.identifier}: checking the approved output",
            force=True,
        )
        restored = _approved_output(member)
        result = export_slide(
            restored,
            folder / f"{member.identifier}.tiff",
            identifier=member.identifier,
            forbidden_text=original_names(member.slide),
            progress=reporter.slide_callback(
                index=index, count=len(members), identifier=member.identifier
            ),
        )
        entries.append(manifest_slide_entry(member, result))
        results.append(result)

    reporter.report(SLIDES_SHARE, "manifest", "writing the manifest", force=True)
    manifest = manifest_build(export=export, entries=entries, results=results)
    _check_manifest(manifest, members)
    manifest_write(folder, manifest)
    return manifest


def _approved_output(member: DatasetVersionMember) -> Path:
    """Return the restored file of a frozen member after checking it is the approved one."""
    run = member.run
    path = storage_absolute(run.restored_path)
    if not path.is_file():
        raise ExportError(
            f"The restored output of run {run.pk} (slide {member.slide_id}) is missing from "
            "the storage; run ink removal again and have it approved."
        )
    actual = sha256_file(path)
    if actual != member.restored_sha256:
        raise ExportError(
            f"The restored output of run {run.pk} (slide {member.slide_id}) changed since it "
            f"was approved (SHA-256 {actual}, approved {member.restored_sha256}); run ink "
            "removal again and have it approved."
        )
    return path


def _check_manifest(manifest: dict[str, Any], members: list[DatasetVersionMember]) -> None:
    """Raise when the manifest text contains an original name (from the dataset's texts)."""
    text = manifest_json_text(manifest).lower()
    leaking = sorted(
        {
            member.identifier
            for member in members
            for name in original_names(member.slide)
            if name.lower() in text
        }
    )
    if leaking:
        raise ExportError(
            f"The manifest would contain the original name of {', '.join(leaking)}, through "
            "the dataset's name or description; change them and export again."
        )


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.iterdir() if path.is_file())


def _stopped_message() -> Replace:
    """Return the update expression that marks a cancelled export's message as stopped."""
    return Replace("message", Value(CANCEL_STOPPING_SUFFIX), Value(CANCEL_STOPPED_SUFFIX))


def _finish(
    export: DatasetExport,
    *,
    status: str,
    from_statuses: tuple[str, ...] = (DatasetExport.Status.RUNNING,),
    audit: bool = True,
    **fields: Any,
) -> int:
    """Set the final status (from `from_statuses` only) and record the finish in the audit log."""
    now = timezone.now()
    with transaction.atomic():
        updated = DatasetExport.objects.filter(pk=export.pk, status__in=from_statuses).update(
            status=status, finished_at=now, updated_at=now, **fields
        )
        if updated and audit:
            audit_record(
                actor=None,
                action=AuditEvent.Action.EXPORT_FINISH,
                target_type="export",
                target_id=export.pk,
                summary=f"Export {export.pk} of dataset {export.dataset.name!r} "
                f"version {export.version.number} {status}.",
                details={
                    "status": status,
                    "dataset_id": export.dataset_id,
                    "version": export.version.number,
                    "error": str(fields.get("error", ""))[:500],
                },
            )
    return updated
