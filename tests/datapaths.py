"""Locate the shared real test data that the suite reads but never copies."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Return the folder of real test data: $INKWEB_TEST_DATA, else ../shared/data."""
    configured = os.environ.get("INKWEB_TEST_DATA")
    if configured:
        return Path(configured).expanduser().resolve()
    return (REPO_ROOT.parent / "shared" / "data").resolve()
