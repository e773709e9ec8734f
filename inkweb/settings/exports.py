"""Dataset export settings: job timeout, zip download limit and an optional object store."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from inkweb.settings.env import env_int, env_str

# An export job that takes longer than this is stopped by its worker.
INKWEB_EXPORT_TIMEOUT_SECONDS = env_int("INKWEB_EXPORT_TIMEOUT_SECONDS", 6 * 3600, minimum=60)

# Largest export (sum of its files) served as one zip download; larger ones are copied
# from the storage folder or the object store instead.
INKWEB_EXPORT_ZIP_MAX_BYTES = env_int("INKWEB_EXPORT_ZIP_MAX_BYTES", 2 * 1024**3, minimum=1)


def parse_export_storage(url: str, *, endpoint_url: str = "", region: str = "") -> dict[str, Any]:
    """Turn INKWEB_EXPORT_STORAGE into a STORAGES-style {"BACKEND", "OPTIONS"} entry.

    ``s3://bucket/prefix`` selects django-storages' S3 backend, which takes its
    credentials from boto3's usual sources (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,
    a profile or an instance role). ``file:///absolute/folder`` selects a folder, such
    as a mounted share.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "s3":
        if not parts.netloc:
            raise ImproperlyConfigured(
                f"INKWEB_EXPORT_STORAGE={url!r} names no bucket; use s3://bucket/prefix"
            )
        options: dict[str, Any] = {
            "bucket_name": parts.netloc,
            "location": parts.path.strip("/"),
            # A second export of a version never replaces files already uploaded.
            "file_overwrite": False,
        }
        if endpoint_url:
            options["endpoint_url"] = endpoint_url
        if region:
            options["region_name"] = region
        return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}
    if scheme == "file":
        if not parts.path.startswith("/"):
            raise ImproperlyConfigured(
                f"INKWEB_EXPORT_STORAGE={url!r} is not an absolute folder; use file:///folder"
            )
        return {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": parts.path},
        }
    raise ImproperlyConfigured(
        f"INKWEB_EXPORT_STORAGE={url!r} is not supported; use s3://bucket/prefix or "
        "file:///folder, or leave it empty to keep exports on the server only"
    )


_EXPORT_STORAGE_URL = env_str("INKWEB_EXPORT_STORAGE", "")
# None keeps exports in INKWEB_STORAGE/exports only.
INKWEB_EXPORT_STORAGE: dict[str, Any] | None = (
    parse_export_storage(
        _EXPORT_STORAGE_URL,
        endpoint_url=env_str("INKWEB_EXPORT_S3_ENDPOINT_URL", ""),
        region=env_str("INKWEB_EXPORT_S3_REGION", ""),
    )
    if _EXPORT_STORAGE_URL
    else None
)
