"""Slide upload, import and ingest against the real slides and the broken files."""

from __future__ import annotations

import stat

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from inkweb.core.queues import queue_get
from inkweb.core.storage import storage_absolute
from inkweb.slides.errors import SlideDuplicateError, SlideRejectedError
from inkweb.slides.jobs import slide_ingest_job
from inkweb.slides.models import Slide
from inkweb.slides.services import file_sha256, slide_delete, slide_import, slide_upload
from pipeline import open_slide
from tests.web.conftest import client_for, stored_files

# Level-0 sizes published with the real slides; a slide listed here must be accepted.
KNOWN_SIZES = {
    "cmu-1-small-region.svs": (2220, 2967),
    "tcga-cr-7395-jp2k.svs": (4443, 3567),
    "boxes.tiff": (300, 250),
    "yb10kx5k-zstd.tiff": (10000, 5000),
    "rgba-pyramid.tiff": (600, 600),
    "smaller-than-tile.svs": (16, 16),
}


def _slide_files(folder):
    return sorted(path for path in folder.iterdir() if path.is_file())


@pytest.mark.django_db
def test_every_real_slide_ingested_or_rejected(shared_data, uploader):
    outcomes = {}
    for path in _slide_files(shared_data / "slides"):
        try:
            slide = slide_import(path=path, imported_by=uploader)
        except SlideRejectedError as error:
            outcomes[path.name] = "rejected"
            assert path.name in error.detail, error.detail
            assert len(error.detail) > len(path.name) + 20, error.detail
            continue

        outcomes[path.name] = slide.ingest_status
        if slide.ingest_status == Slide.IngestStatus.FAILED:
            assert path.name in slide.ingest_error
            continue

        assert slide.ingest_status == Slide.IngestStatus.READY
        with open_slide(path) as reader:
            assert (slide.width, slide.height) == (reader.info.width, reader.info.height)
        if path.name in KNOWN_SIZES:
            assert (slide.width, slide.height) == KNOWN_SIZES[path.name]
        original = storage_absolute(slide.original_path)
        assert stat.S_IMODE(original.stat().st_mode) == 0o444
        assert file_sha256(original) == file_sha256(path) == slide.sha256
        assert storage_absolute(slide.thumbnail_path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    for name in KNOWN_SIZES:
        assert outcomes[name] == Slide.IngestStatus.READY, outcomes


@pytest.mark.django_db
def test_cmu_metadata_pinned(shared_data, uploader):
    slide = slide_import(
        path=shared_data / "slides" / "cmu-1-small-region.svs", imported_by=uploader
    )
    assert slide.level_count >= 1
    assert slide.mpp_x == pytest.approx(0.499, abs=0.001)
    assert slide.format
    assert slide.info["width"] == 2220


@pytest.mark.django_db
def test_bad_uploads_rejected_leaving_nothing(shared_data, uploader):
    client = client_for(uploader)
    for path in _slide_files(shared_data / "bad"):
        upload = SimpleUploadedFile(path.name, path.read_bytes())
        response = client.post("/api/slides/", {"file": upload}, format="multipart")

        assert response.status_code == 400, (path.name, response.content)
        body = response.json()
        assert body["code"] == "slide_rejected"
        assert path.name in body["detail"]
        assert str(path.parent) not in body["detail"]
    assert Slide.objects.count() == 0
    assert stored_files() == []


@pytest.mark.django_db
def test_upload_stores_and_enqueues_ingest(
    green_pen_path, uploader, django_capture_on_commit_callbacks
):
    client = client_for(uploader)
    upload = SimpleUploadedFile(green_pen_path.name, green_pen_path.read_bytes())
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/slides/", {"file": upload, "name": "Green pen"}, format="multipart"
        )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "Green pen"
    assert body["ingest_status"] == "pending"
    assert body["state"] == "ingesting"
    slide = Slide.objects.get(pk=body["id"])
    assert stat.S_IMODE(storage_absolute(slide.original_path).stat().st_mode) == 0o444
    assert f"ingest-slide-{slide.pk}" in queue_get("ingest").job_ids

    assert slide_ingest_job(slide_id=slide.pk) == Slide.IngestStatus.READY
    slide.refresh_from_db()
    assert (slide.width, slide.height) == (754, 631)


@pytest.mark.django_db
def test_duplicate_upload_conflicts(ready_slide, green_pen_path, uploader):
    upload = SimpleUploadedFile(green_pen_path.name, green_pen_path.read_bytes())
    response = client_for(uploader).post("/api/slides/", {"file": upload}, format="multipart")

    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_slide"
    assert str(ready_slide.pk) in response.json()["detail"]
    assert Slide.objects.count() == 1
    assert len([path for path in stored_files() if "originals" in path.parts]) == 1


@pytest.mark.django_db
def test_empty_upload_rejected(uploader):
    upload = SimpleUploadedFile("empty.svs", b"")
    with pytest.raises(SlideRejectedError, match="empty"):
        slide_upload(uploaded_file=upload, uploaded_by=uploader)
    assert stored_files() == []


@pytest.mark.django_db
def test_upload_size_limit(settings, green_pen_path, uploader):
    settings.INKWEB_MAX_UPLOAD_BYTES = 1000
    upload = SimpleUploadedFile(green_pen_path.name, green_pen_path.read_bytes())
    response = client_for(uploader).post("/api/slides/", {"file": upload}, format="multipart")
    assert response.status_code == 413
    assert "INKWEB_MAX_UPLOAD_BYTES" in response.json()["detail"]
    assert stored_files() == []


@pytest.mark.django_db
def test_import_command_reports_and_skips(shared_data, uploader, capsys):
    call_command(
        "inkweb_import",
        str(shared_data / "bad"),
        str(shared_data / "ink" / "tcga-green-pen.png"),
        "--user",
        uploader.username,
    )
    first = capsys.readouterr().out
    assert "imported" in first
    for name in ("random-bytes.svs", "corrupt-jpeg-tile.svs", "unknown-compression.tiff"):
        assert f"rejected {shared_data / 'bad' / name}: " in first

    call_command("inkweb_import", str(shared_data / "ink" / "tcga-green-pen.png"))
    second = capsys.readouterr().out
    assert "skipped" in second
    assert "duplicate of slide" in second
    assert Slide.objects.count() == 1


@pytest.mark.django_db
def test_ingest_detects_changed_original(ready_slide):
    from inkweb.slides.services import slide_ingest

    Slide.objects.filter(pk=ready_slide.pk).update(sha256="0" * 64)
    slide = slide_ingest(slide_id=ready_slide.pk)
    assert slide.ingest_status == Slide.IngestStatus.FAILED
    assert "checksum" in slide.ingest_error


@pytest.mark.django_db
def test_delete_removes_files(ready_slide, uploader):
    slide_delete(slide=ready_slide, deleted_by=uploader)
    assert Slide.objects.count() == 0
    assert stored_files() == []


@pytest.mark.django_db
def test_delete_refused_for_other_user(ready_slide, reviewer):
    response = client_for(reviewer).delete(f"/api/slides/{ready_slide.pk}/")
    assert response.status_code == 403
    assert Slide.objects.filter(pk=ready_slide.pk).exists()


@pytest.mark.django_db
def test_duplicate_import_raises(ready_slide, green_pen_path):
    with pytest.raises(SlideDuplicateError) as error:
        slide_import(path=green_pen_path)
    assert error.value.existing_slide_id == ready_slide.pk
