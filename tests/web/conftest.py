"""Fixtures of the web tests: isolated storage and Redis db, users, slides and runs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from inkweb.accounts.services import user_create_or_update
from inkweb.core.storage import storage_ensure_layout, storage_relative, storage_root
from inkweb.runs.models import PipelineRun
from inkweb.slides.services import slide_import

# A Redis database of its own, flushed after every test; never the application's db 0.
TEST_REDIS_URL = os.environ.get("INKWEB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(autouse=True)
def isolated_services(settings, tmp_path):
    """Point storage at a temporary folder and Redis at the test database."""
    storage = tmp_path / "storage"
    # PBKDF2 at Django's default strength costs about half a second per test user.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.INKWEB_STORAGE = storage
    settings.FILE_UPLOAD_TEMP_DIR = str(storage / "tmp")
    settings.REDIS_URL = TEST_REDIS_URL
    settings.CACHES = {
        name: {**config, "LOCATION": TEST_REDIS_URL, "KEY_PREFIX": f"test-{name}"}
        for name, config in django_settings.CACHES.items()
    }
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [{"address": TEST_REDIS_URL, "socket_timeout": 30}],
                "prefix": "inkweb-test",
            },
        }
    }
    storage_ensure_layout()
    yield
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()


def stored_files() -> list[Path]:
    """Return every file under the storage root (empty folders do not count)."""
    return sorted(path for path in storage_root().rglob("*") if path.is_file())


@pytest.fixture
def uploader(db):
    user, _ = user_create_or_update(username="uma", password="uma-password-1", role="uploader")
    return user


@pytest.fixture
def reviewer(db):
    user, _ = user_create_or_update(username="rita", password="rita-password-1", role="reviewer")
    return user


@pytest.fixture
def staff(db):
    user, _ = user_create_or_update(username="sam", password="sam-password-1", role="admin")
    return user


def client_for(user) -> APIClient:
    """Return an API client signed in through the session, as the pages are."""
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def green_pen_path(shared_data) -> Path:
    return shared_data / "ink" / "tcga-green-pen.png"


@pytest.fixture
def ready_slide(db, uploader, green_pen_path):
    """The real pen-marked H&E image, stored and ingested."""
    return slide_import(path=green_pen_path, imported_by=uploader)


@pytest.fixture(scope="session")
def pipeline_outputs(tmp_path_factory, shared_data) -> tuple[Path, dict]:
    """Run the real pipeline once per session on the pen-marked image."""
    from pipeline import run_pipeline

    output = tmp_path_factory.mktemp("pipeline-outputs")
    report = run_pipeline(shared_data / "ink" / "tcga-green-pen.png", output, device="cpu")
    return output, report


@pytest.fixture
def succeeded_run(ready_slide, uploader) -> PipelineRun:
    """A succeeded run row of `ready_slide` without output files, for state and review tests."""
    return PipelineRun.objects.create(
        slide=ready_slide,
        requested_by=uploader,
        status=PipelineRun.Status.SUCCEEDED,
        progress=1.0,
        ink_found=True,
        report={"ink_found": True, "regions": [], "tiles": {"total": 4, "changed": 1}},
    )


@pytest.fixture
def processed_run(ready_slide, uploader, pipeline_outputs) -> PipelineRun:
    """A succeeded run of `ready_slide` whose outputs are copies of the session's real run."""
    source, report = pipeline_outputs
    run = PipelineRun.objects.create(slide=ready_slide, requested_by=uploader)
    folder = storage_root() / "outputs" / f"slide-{ready_slide.pk}" / f"run-{run.pk}"
    shutil.copytree(source, folder)
    outputs = report.get("outputs", {})
    PipelineRun.objects.filter(pk=run.pk).update(
        status=PipelineRun.Status.SUCCEEDED,
        progress=1.0,
        report=json.loads(json.dumps(report, default=str)),
        ink_found=bool(report.get("ink_found")),
        output_dir=storage_relative(folder),
        restored_path=storage_relative(folder / "restored.tiff"),
        mask_path=storage_relative(folder / "ink-mask.tiff"),
        report_path=storage_relative(folder / "report.json"),
        restored_sha256=outputs.get("restored", {}).get("sha256", ""),
        mask_sha256=outputs.get("ink_mask", {}).get("sha256", ""),
    )
    run.refresh_from_db()
    return run


def pytest_collection_modifyitems(items):
    # WhiteNoise warns that STATIC_ROOT is missing until `collectstatic` has run; the
    # web tests do not serve static files.
    for item in items:
        item.add_marker(pytest.mark.filterwarnings("ignore:No directory at:UserWarning"))
