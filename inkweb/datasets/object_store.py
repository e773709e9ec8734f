"""Upload of finished exports to the object store named by INKWEB_EXPORT_STORAGE."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage
from django.utils.module_loading import import_string

from pipeline.export import ExportCancelled, ExportError

logger = logging.getLogger(__name__)


class ExportUploadError(ExportError):
    """Copying an export's files to the object store failed."""


def export_object_storage() -> Storage | None:
    """Return the configured export storage (django-storages S3 or a folder), or None."""
    config = settings.INKWEB_EXPORT_STORAGE
    if config is None:
        return None
    backend = import_string(config["BACKEND"])
    return backend(**config.get("OPTIONS", {}))


def export_upload(
    *, files: list[Path], prefix: str, on_file: Callable[[int, int, str], None]
) -> list[str]:
    """Save `files` under `prefix/` in the export storage; return the names it stored.

    `on_file(index, count, name)` runs before each file and may raise ExportCancelled.
    On any failure the files already uploaded are deleted (best effort) and
    ExportUploadError, or the cancellation, is raised.
    """
    storage = export_object_storage()
    if storage is None:
        raise ExportUploadError("No object store is configured (INKWEB_EXPORT_STORAGE is empty).")
    stored: list[str] = []
    try:
        for index, path in enumerate(files):
            on_file(index, len(files), path.name)
            with path.open("rb") as handle:
                stored.append(storage.save(f"{prefix}/{path.name}", File(handle, name=path.name)))
    except ExportCancelled:
        _delete_quietly(storage, stored)
        raise
    except Exception as error:
        # Storage backends raise their own types (botocore errors for S3, OSError for folders).
        _delete_quietly(storage, stored)
        raise ExportUploadError(
            f"Uploading {prefix} to the object store failed after {len(stored)} of "
            f"{len(files)} files: {error}"
        ) from error
    logger.info("Uploaded %d files of %s to the object store", len(stored), prefix)
    return stored


def export_object_delete(names: list[str]) -> None:
    """Delete uploaded files again (best effort), e.g. for an export cancelled at the end."""
    storage = export_object_storage()
    if storage is not None:
        _delete_quietly(storage, names)


def _delete_quietly(storage: Storage, names: list[str]) -> None:
    for name in names:
        try:
            storage.delete(name)
        except Exception as error:
            logger.warning("Could not delete %s from the object store: %s", name, error)
