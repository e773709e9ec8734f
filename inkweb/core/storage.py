"""Paths inside INKWEB_STORAGE; the database stores them relative to that root."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from django.conf import settings

STORAGE_FOLDERS = ("originals", "outputs", "thumbnails", "incoming", "tmp")


def storage_root() -> Path:
    """Return the storage root from settings (tests override it per test)."""
    return Path(settings.INKWEB_STORAGE)


def storage_ensure_layout() -> None:
    """Create the storage root and its fixed subfolders if they are missing."""
    root = storage_root()
    for folder in STORAGE_FOLDERS:
        (root / folder).mkdir(parents=True, exist_ok=True)
    Path(settings.FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)


def storage_absolute(relative: str) -> Path:
    """Return the absolute path of a stored relative path, rejecting paths that leave the root."""
    root = storage_root().resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"stored path {relative!r} points outside the storage root {root}")
    return path


def storage_relative(path: Path) -> str:
    """Return `path` relative to the storage root, as stored in the database."""
    return str(Path(path).resolve().relative_to(storage_root().resolve()))


def storage_make_read_only(path: Path) -> None:
    """Set a file to mode 0444 so that no process of ours can modify it in place."""
    os.chmod(path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
