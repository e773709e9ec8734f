"""Downloads of a finished export: the whole folder as a streamed zip, or one manifest file."""

from __future__ import annotations

import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, cast

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from inkweb.core.exceptions import ConflictError, NotFoundError
from inkweb.core.storage import storage_absolute
from inkweb.datasets.manifests import MANIFEST_CSV, MANIFEST_JSON
from inkweb.datasets.models import DatasetExport

_CHUNK_BYTES = 1 << 20
_MANIFEST_TYPES = {MANIFEST_JSON: "application/json", MANIFEST_CSV: "text/csv; charset=utf-8"}


def export_file_paths(export: DatasetExport) -> list[Path]:
    """Return the files of a succeeded export: the manifests, then each slide's TIFF.

    Raises ConflictError when the export has not succeeded and NotFoundError when a
    file listed in its manifest is missing from the storage.
    """
    if export.status != DatasetExport.Status.SUCCEEDED or not export.output_dir:
        raise ConflictError(
            f"Export {export.pk} has status {export.status}; only succeeded exports can be "
            "downloaded.",
            code="export_not_finished",
        )
    folder = storage_absolute(export.output_dir)
    names = [MANIFEST_CSV, MANIFEST_JSON]
    names += [entry["file"] for entry in (export.manifest or {}).get("slides", [])]
    paths = [folder / name for name in names]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise NotFoundError(
            f"Export {export.pk} is incomplete in the storage ({', '.join(missing)} missing "
            f"from {export.output_dir}); export the dataset again.",
            code="export_files_missing",
        )
    return paths


def export_zip_response(request: HttpRequest, export: DatasetExport) -> StreamingHttpResponse:
    """Return the export's files as a zip streamed while it is built, without compression.

    Raises ConflictError (export_too_large) above INKWEB_EXPORT_ZIP_MAX_BYTES.
    """
    paths = export_file_paths(export)
    total = sum(path.stat().st_size for path in paths)
    limit = settings.INKWEB_EXPORT_ZIP_MAX_BYTES
    if total > limit:
        raise ConflictError(
            f"Export {export.pk} is {_gib(total)}, above the zip download limit of "
            f"{_gib(limit)} (INKWEB_EXPORT_ZIP_MAX_BYTES). Copy the files from "
            f"{export.output_dir} in the server's storage, or download the manifest and "
            "fetch the files from the object store.",
            code="export_too_large",
        )
    top = f"{export.dataset.slug}-v{export.version.number}"
    chunks = zip_chunks([(f"{top}/{path.name}", path) for path in paths])
    # Under ASGI a synchronous iterator would be read whole into memory before sending.
    content: Iterator[bytes] | AsyncIterator[bytes] = (
        _in_threads(chunks) if isinstance(request, ASGIRequest) else chunks
    )
    response = StreamingHttpResponse(content, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{top}.zip"'
    return response


def export_manifest_response(export: DatasetExport, *, name: str) -> HttpResponse:
    """Return manifest.json or manifest.csv of a succeeded export as an attachment."""
    if name not in _MANIFEST_TYPES:
        raise NotFoundError(f"An export has no file {name!r}.", code="not_found")
    path = next(path for path in export_file_paths(export) if path.name == name)
    response = HttpResponse(path.read_bytes(), content_type=_MANIFEST_TYPES[name])
    filename = f"{export.dataset.slug}-v{export.version.number}-{name}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class _Sink:
    """Write-only stream that zipfile writes into and the generator drains."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: the generator takes the bytes."""

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def zip_chunks(files: list[tuple[str, Path]]) -> Iterator[bytes]:
    """Yield a stored (uncompressed) ZIP64 archive of `files` as (archive name, path) pairs.

    The sink cannot seek, so zipfile writes each entry's sizes in a data descriptor after
    it. At most one chunk of a file is in memory at a time. Entries are stored without
    compression because TIFF tiles are compressed already.
    """
    sink = _Sink()
    with zipfile.ZipFile(
        cast(IO[bytes], sink), "w", compression=zipfile.ZIP_STORED, allowZip64=True
    ) as archive:
        for name, path in files:
            info = zipfile.ZipInfo.from_file(path, name)
            info.compress_type = zipfile.ZIP_STORED
            with path.open("rb") as source, archive.open(info, "w", force_zip64=True) as target:
                while chunk := source.read(_CHUNK_BYTES):
                    target.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()


async def _in_threads(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    while True:
        chunk = await sync_to_async(_next_chunk, thread_sensitive=False)(chunks)
        if chunk is None:
            return
        if chunk:
            yield chunk


def _next_chunk(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)


def _gib(size: int) -> str:
    return f"{size / 1024**3:.2f} GiB"
