"""Fixtures of the integration tests: one live deployment per module."""

from __future__ import annotations

import pytest

from tests.integration.stack import LiveStack


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    deployment = LiveStack(tmp_path_factory.mktemp("live"), collect_static=True)
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()
