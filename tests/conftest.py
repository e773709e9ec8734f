"""Fixtures shared by every test layer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.datapaths import shared_data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Return the real test data folder, skipping the test when it is absent."""
    folder = shared_data_dir()
    if not (folder / "README.md").is_file():
        pytest.skip(f"real test data not found at {folder}; set INKWEB_TEST_DATA")
    return folder
