"""Datasets: approval rules for members, frozen versions, exports, cancellation and audit."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import numpy as np
import openslide
import pytest
import tifffile
from django.core.exceptions import ImproperlyConfigured

from inkweb.audit.models import AuditEvent
from inkweb.core.exceptions import ApplicationError, ConflictError, ForbiddenError, NotFoundError
from inkweb.core.queues import queue_get
from inkweb.core.storage import storage_absolute, storage_root
from inkweb.datasets import execution
from inkweb.datasets.cancellation import export_cancel_flag_is_set, export_cancel_flag_set
from inkweb.datasets.execution import export_execute, export_folder
from inkweb.datasets.manifests import manifest_csv_text, manifest_slide_entry
from inkweb.datasets.models import (
    Dataset,
    DatasetExport,
    DatasetMember,
    DatasetVersion,
    DatasetVersionImmutableError,
    DatasetVersionMember,
)
from inkweb.datasets.object_store import export_object_storage
from inkweb.datasets.progress import ExportProgressReporter
from inkweb.datasets.services import (
    dataset_create,
    dataset_export,
    dataset_slide_add,
    dataset_slide_remove,
    export_cancel,
)
from inkweb.reviews.services import review_record
from inkweb.settings.exports import parse_export_storage
from pipeline import ProgressEvent
from pipeline.export import ExportCancelled
from tests.web.datasets.helpers import processed_run_for

TIFF_FORBIDDEN_TAGS = (270, 305, 306, 315, 316, 271, 272, 269, 285)


def _dataset(reviewer, name="Colon teaching set") -> Dataset:
    return dataset_create(name=name, description="Pen marks on colon", created_by=reviewer)


def _export(dataset, reviewer, capture, **kwargs) -> DatasetExport:
    with capture(execute=True):
        return dataset_export(dataset=dataset, requested_by=reviewer, **kwargs)


def _audit(action) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


# ---- datasets and drafts ---------------------------------------------------------------


@pytest.mark.django_db
def test_create_sets_slug_and_audits(reviewer):
    dataset = _dataset(reviewer, name="  Colon   teaching set ")

    assert dataset.name == "Colon teaching set"
    assert dataset.slug == "colon-teaching-set"
    assert dataset.created_by == reviewer
    events = _audit(AuditEvent.Action.DATASET_CREATE)
    assert [(event.target_type, event.target_id) for event in events] == [("dataset", dataset.pk)]
    assert events[0].actor == reviewer


@pytest.mark.django_db
def test_create_rejects_taken_names(reviewer):
    _dataset(reviewer, name="Colon teaching set")
    for name in ("colon TEACHING set", "Colon: teaching set!"):
        with pytest.raises(ConflictError) as error:
            _dataset(reviewer, name=name)
        assert error.value.code == "dataset_name_taken"
    with pytest.raises(ApplicationError) as error:
        _dataset(reviewer, name="***")
    assert error.value.code == "invalid_name"
    assert Dataset.objects.count() == 1


@pytest.mark.django_db
def test_changes_need_reviewer_role(uploader, reviewer, approved_run):
    with pytest.raises(ForbiddenError):
        dataset_create(name="Mine", created_by=uploader)
    dataset = _dataset(reviewer)
    with pytest.raises(ForbiddenError):
        dataset_slide_add(dataset=dataset, slide=approved_run.slide, added_by=uploader)
    with pytest.raises(ForbiddenError):
        dataset_export(dataset=dataset, requested_by=uploader)
    assert not DatasetMember.objects.exists()


@pytest.mark.django_db
def test_add_approved_slide_audits(reviewer, approved_run):
    dataset = _dataset(reviewer)
    member = dataset_slide_add(dataset=dataset, slide=approved_run.slide, added_by=reviewer)

    assert member.slide == approved_run.slide
    events = _audit(AuditEvent.Action.DATASET_CHANGE)
    assert len(events) == 1
    assert events[0].slide_id == approved_run.slide_id
    assert events[0].details["change"] == "add"
    assert events[0].details["run_id"] == approved_run.pk


def _assert_rejected(dataset, slide, reviewer, code: str, fragment: str) -> None:
    with pytest.raises(ConflictError) as error:
        dataset_slide_add(dataset=dataset, slide=slide, added_by=reviewer)
    assert error.value.code == code
    assert fragment in error.value.detail
    assert not DatasetMember.objects.filter(dataset=dataset, slide=slide).exists()


@pytest.mark.django_db
def test_add_rejects_unprocessed_slide(reviewer, ready_slide):
    dataset = _dataset(reviewer)
    _assert_rejected(dataset, ready_slide, reviewer, "slide_not_processed", "no succeeded run")
    assert not _audit(AuditEvent.Action.DATASET_CHANGE)


@pytest.mark.django_db
def test_add_rejects_unreviewed_slide(reviewer, succeeded_run):
    dataset = _dataset(reviewer)
    _assert_rejected(dataset, succeeded_run.slide, reviewer, "slide_not_reviewed", "not been")


@pytest.mark.parametrize("decision", ["reject", "rework"])
@pytest.mark.django_db
def test_add_rejects_unapproved_decision(reviewer, processed_run, decision):
    review_record(slide=processed_run.slide, reviewer=reviewer, decision=decision)
    dataset = _dataset(reviewer)
    _assert_rejected(dataset, processed_run.slide, reviewer, "slide_not_approved", "not approved")


@pytest.mark.django_db
def test_add_rejects_rejection_after_approval(reviewer, approved_run):
    review_record(slide=approved_run.slide, reviewer=reviewer, decision="reject")
    dataset = _dataset(reviewer)
    _assert_rejected(dataset, approved_run.slide, reviewer, "slide_not_approved", "Rejected")


@pytest.mark.django_db
def test_add_rejects_approval_of_older_run(reviewer, uploader, approved_run, pipeline_outputs):
    newer = processed_run_for(approved_run.slide, uploader, pipeline_outputs)
    dataset = _dataset(reviewer)
    _assert_rejected(
        dataset,
        approved_run.slide,
        reviewer,
        "approval_outdated",
        f"approved on run {approved_run.pk}, but its latest succeeded run is {newer.pk}",
    )


@pytest.mark.django_db
def test_add_rejects_duplicate(reviewer, approved_run):
    dataset = _dataset(reviewer)
    dataset_slide_add(dataset=dataset, slide=approved_run.slide, added_by=reviewer)
    with pytest.raises(ConflictError) as error:
        dataset_slide_add(dataset=dataset, slide=approved_run.slide, added_by=reviewer)
    assert error.value.code == "slide_already_member"
    assert DatasetMember.objects.filter(dataset=dataset).count() == 1


@pytest.mark.django_db
def test_remove_slide_from_draft(reviewer, approved_run):
    dataset = _dataset(reviewer)
    dataset_slide_add(dataset=dataset, slide=approved_run.slide, added_by=reviewer)
    dataset_slide_remove(dataset=dataset, slide=approved_run.slide, removed_by=reviewer)

    assert not DatasetMember.objects.filter(dataset=dataset).exists()
    changes = [event.details["change"] for event in _audit(AuditEvent.Action.DATASET_CHANGE)]
    assert changes == ["add", "remove"]
    with pytest.raises(NotFoundError) as error:
        dataset_slide_remove(dataset=dataset, slide=approved_run.slide, removed_by=reviewer)
    assert error.value.code == "slide_not_member"


# ---- freezing versions --------------------------------------------------------------


@pytest.mark.django_db
def test_export_of_empty_dataset_rejected(reviewer):
    dataset = _dataset(reviewer)
    with pytest.raises(ConflictError) as error:
        dataset_export(dataset=dataset, requested_by=reviewer)
    assert error.value.code == "dataset_empty"
    assert not DatasetVersion.objects.exists()


@pytest.mark.django_db
def test_export_freezes_version(
    reviewer, approved_run, second_approved_run, django_capture_on_commit_callbacks
):
    dataset = _dataset(reviewer)
    dataset_slide_add(dataset=dataset, slide=approved_run.slide, added_by=reviewer)
    dataset_slide_add(dataset=dataset, slide=second_approved_run.slide, added_by=reviewer)
    export = _export(dataset, reviewer, django_capture_on_commit_callbacks)

    assert export.status == DatasetExport.Status.QUEUED
    assert export.version.number == 1
    assert export.rq_job_id in queue_get("ingest").job_ids
    members = list(export.version.members.order_by("position"))
    assert [member.identifier for member in members] == [
        "colon-teaching-set-v1-0001",
        "colon-teaching-set-v1-0002",
    ]
    assert [member.slide_id for member in members] == [
        approved_run.slide_id,
        second_approved_run.slide_id,
    ]
    assert [member.run_id for member in members] == [approved_run.pk, second_approved_run.pk]
    assert members[0].restored_sha256 == approved_run.restored_sha256
    assert members[0].review.decision == "approve"
    assert members[0].review.run_id == approved_run.pk
    start = _audit(AuditEvent.Action.EXPORT_START)
    assert [(event.target_type, event.target_id) for event in start] == [("export", export.pk)]
    assert start[0].details["version"] == 1


@pytest.mark.django_db
def test_export_rechecks_members(reviewer, approved_run):
    dataset = _dataset(reviewer)
    dataset_slide_add(dataset=dataset, slide=approved_run.slide, added_by=reviewer)
    review_record(slide=approved_run.slide, reviewer=reviewer, decision="reject")

    with pytest.raises(ConflictError) as error:
        dataset_export(dataset=dataset, requested_by=reviewer)
    assert error.value.code == "members_not_approved"
    assert f"Slide {approved_run.slide_id}" in error.value.detail
    assert not DatasetVersion.objects.exists()
    assert not DatasetExport.objects.exists()


@pytest.mark.django_db
def test_second_active_export_rejected(reviewer, approved_run, django_capture_on_commit_callbacks):
    dataset = _dataset(reviewer)
    dataset_slide_add(dataset=dataset, slide=approved_run.slide, added_by=reviewer)
    _export(dataset, reviewer, django_capture_on_commit_callbacks)
    with pytest.raises(ConflictError) as error:
        dataset_export(dataset=dataset, requested_by=reviewer)
    assert error.value.code == "export_already_active"
    assert DatasetVersion.objects.count() == 1


@pytest.mark.django_db
def test_object_store_needs_configuration(reviewer, approved_run, settings):
    settings.INKWEB_EXPORT_STORAGE = None
    dataset = _dataset(reviewer)
    dataset_slide_add(dataset=dataset, slide=approved_run.slide, added_by=reviewer)
    with pytest.raises(ConflictError) as error:
        dataset_export(dataset=dataset, requested_by=reviewer, target="object_store")
    assert error.value.code == "object_store_not_configured"
    with pytest.raises(ApplicationError) as error:
        dataset_export(dataset=dataset, requested_by=reviewer, target="ftp")
    assert error.value.code == "invalid_target"


@pytest.mark.django_db
def test_versions_are_immutable(reviewer, approved_run, django_capture_on_commit_callbacks):
    dataset = _dataset(reviewer)
    dataset_slide_add(dataset=dataset, slide=approved_run.slide, added_by=reviewer)
    version = _export(dataset, reviewer, django_capture_on_commit_callbacks).version
    member = version.members.get()

    version.number = 7
    with pytest.raises(DatasetVersionImmutableError):
        version.save()
    with pytest.raises(DatasetVersionImmutableError):
        version.delete()
    member.restored_sha256 = "0" * 64
    with pytest.raises(DatasetVersionImmutableError):
        member.save()
    with pytest.raises(DatasetVersionImmutableError):
        member.delete()
    with pytest.raises(DatasetVersionImmutableError):
        DatasetVersion.objects.filter(pk=version.pk).update(number=3)
    with pytest.raises(DatasetVersionImmutableError):
        DatasetVersionMember.objects.all().delete()

    stored = DatasetVersionMember.objects.get(pk=member.pk)
    assert stored.restored_sha256 == approved_run.restored_sha256
    assert DatasetVersion.objects.get(pk=version.pk).number == 1


# ---- executing exports --------------------------------------------------------------


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def exported(reviewer, approved_run, second_approved_run, django_capture_on_commit_callbacks):
    """A two-slide dataset exported once, synchronously."""
    dataset = _dataset(reviewer)
    dataset_slide_add(dataset=dataset, slide=approved_run.slide, added_by=reviewer)
    dataset_slide_add(dataset=dataset, slide=second_approved_run.slide, added_by=reviewer)
    export = _export(dataset, reviewer, django_capture_on_commit_callbacks)
    return export_execute(export_id=export.pk)


@pytest.mark.django_db
def test_export_writes_verified_files(exported, approved_run, reviewer):
    assert exported.status == DatasetExport.Status.SUCCEEDED, exported.error
    assert exported.progress == 1.0
    folder = storage_absolute(exported.output_dir)
    assert folder == storage_root() / "exports" / "colon-teaching-set" / "v1"
    assert sorted(path.name for path in folder.iterdir()) == [
        "colon-teaching-set-v1-0001.tiff",
        "colon-teaching-set-v1-0002.tiff",
        "manifest.csv",
        "manifest.json",
    ]
    assert not list(folder.parent.glob(".*"))
    assert exported.total_bytes == sum(path.stat().st_size for path in folder.iterdir())

    first = folder / "colon-teaching-set-v1-0001.tiff"
    restored = storage_absolute(approved_run.restored_path)
    with tifffile.TiffFile(first) as tif, tifffile.TiffFile(restored) as source:
        assert np.array_equal(tif.pages[0].asarray(), source.pages[0].asarray())
        for page in tif.pages:
            assert page.is_tiled
            for code in TIFF_FORBIDDEN_TAGS:
                assert code not in page.tags
    with openslide.OpenSlide(str(first)) as handle:
        assert handle.properties["openslide.vendor"] == "generic-tiff"
        assert dict(handle.associated_images) == {}
        assert "tiff.ImageDescription" not in handle.properties


@pytest.mark.django_db
def test_exported_bytes_hold_no_original_name(exported, approved_run):
    folder = storage_absolute(exported.output_dir)
    slide = approved_run.slide
    assert slide.original_filename == "tcga-green-pen.png"
    for path in folder.iterdir():
        content = path.read_bytes().lower()
        assert b"tcga-green-pen" not in content, path.name
        assert b"boxes.tiff" not in content, path.name


@pytest.mark.django_db
def test_manifest_checksums_verify(exported, approved_run, second_approved_run, reviewer):
    folder = storage_absolute(exported.output_dir)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest == exported.manifest
    assert manifest["version"] == 1
    assert manifest["dataset"]["slug"] == "colon-teaching-set"
    assert [entry["identifier"] for entry in manifest["slides"]] == [
        "colon-teaching-set-v1-0001",
        "colon-teaching-set-v1-0002",
    ]
    for entry in manifest["slides"]:
        path = folder / entry["file"]
        assert _sha256(path) == entry["sha256"]
        assert path.stat().st_size == entry["size_bytes"]
    first = manifest["slides"][0]
    report = approved_run.report
    assert (first["width"], first["height"]) == (
        approved_run.slide.width,
        approved_run.slide.height,
    )
    assert first["run_id"] == approved_run.pk
    assert first["pipeline_version"] == report["pipeline_version"]
    assert first["models"] == report["models"]
    assert first["reviewer"] == reviewer.username
    assert first["restored_sha256"] == approved_run.restored_sha256
    assert manifest["slides"][1]["run_id"] == second_approved_run.pk

    removed = manifest["deidentification"]["slides"]["colon-teaching-set-v1-0001"]["removed"]
    assert any(item.startswith("ImageDescription") for item in removed)
    assert any("label, macro" in item for item in manifest["deidentification"]["never_written"])

    rows = list(csv.DictReader(io.StringIO((folder / "manifest.csv").read_text())))
    assert [row["identifier"] for row in rows] == [
        entry["identifier"] for entry in manifest["slides"]
    ]
    assert rows[0]["sha256"] == first["sha256"]
    assert rows[0]["reviewer"] == reviewer.username
    assert rows[0]["run_id"] == str(approved_run.pk)


@pytest.mark.django_db
def test_export_finish_audited(exported):
    finish = _audit(AuditEvent.Action.EXPORT_FINISH)
    assert [(event.target_id, event.details["status"]) for event in finish] == [
        (exported.pk, "succeeded")
    ]
    assert finish[0].actor is None


@pytest.mark.django_db
def test_reexport_makes_new_version(exported, reviewer, django_capture_on_commit_callbacks):
    first_folder = storage_absolute(exported.output_dir)
    checksums = {path.name: _sha256(path) for path in first_folder.iterdir()}

    second = export_execute(
        export_id=_export(exported.dataset, reviewer, django_capture_on_commit_callbacks).pk
    )

    assert second.status == DatasetExport.Status.SUCCEEDED, second.error
    assert second.version.number == 2
    assert second.output_dir.endswith("colon-teaching-set/v2")
    assert {path.name: _sha256(path) for path in first_folder.iterdir()} == checksums
    identifiers = [entry["identifier"] for entry in second.manifest["slides"]]
    assert identifiers == ["colon-teaching-set-v2-0001", "colon-teaching-set-v2-0002"]
    assert DatasetVersionMember.objects.filter(version=exported.version).count() == 2


@pytest.mark.django_db
def test_cancel_queued_export(reviewer, approved_run, django_capture_on_commit_callbacks):
    dataset = _dataset(reviewer)
    dataset_slide_add(dataset=dataset, slide=approved_run.slide, added_by=reviewer)
    export = _export(dataset, reviewer, django_capture_on_commit_callbacks)

    cancelled = export_cancel(export=export, cancelled_by=reviewer)

    assert cancelled.status == DatasetExport.Status.CANCELLED
    assert export.rq_job_id not in queue_get("ingest").job_ids
    assert export_execute(export_id=export.pk).status == DatasetExport.Status.CANCELLED
    assert not export_folder(export).exists()
    finish = _audit(AuditEvent.Action.EXPORT_FINISH)
    assert [(event.actor, event.details["status"]) for event in finish] == [(reviewer, "cancelled")]
    with pytest.raises(ConflictError) as error:
        export_cancel(export=export, cancelled_by=reviewer)
    assert error.value.code == "export_not_active"


@pytest.mark.django_db
def test_cancel_running_export_stops_it(
    reviewer, approved_run, django_capture_on_commit_callbacks, monkeypatch
):
    dataset = _dataset(reviewer)
    dataset_slide_add(dataset=dataset, slide=approved_run.slide, added_by=reviewer)
    export = _export(dataset, reviewer, django_capture_on_commit_callbacks)
    real_export_slide = execution.export_slide

    def cancel_then_export(*args, **kwargs):
        # A reviewer cancels while the worker is writing the first slide.
        export_cancel(export=DatasetExport.objects.get(pk=export.pk), cancelled_by=reviewer)
        return real_export_slide(*args, **kwargs)

    monkeypatch.setattr(execution, "export_slide", cancel_then_export)
    finished = export_execute(export_id=export.pk)

    assert finished.status == DatasetExport.Status.CANCELLED
    assert finished.message == f"Cancelled by {reviewer.username}; stopped."
    folder = export_folder(export)
    assert not folder.exists()
    assert not list(folder.parent.iterdir())
    assert not export_cancel_flag_is_set(export_id=export.pk)
    assert len(_audit(AuditEvent.Action.EXPORT_FINISH)) == 1


@pytest.mark.django_db
def test_cancel_as_export_finishes(
    reviewer, approved_run, django_capture_on_commit_callbacks, monkeypatch
):
    dataset = _dataset(reviewer)
    dataset_slide_add(dataset=dataset, slide=approved_run.slide, added_by=reviewer)
    export = _export(dataset, reviewer, django_capture_on_commit_callbacks)
    real_folder_bytes = execution._folder_bytes

    def cancel_then_measure(folder):
        # The files are in place and only the final status is left to write.
        export_cancel(export=DatasetExport.objects.get(pk=export.pk), cancelled_by=reviewer)
        return real_folder_bytes(folder)

    monkeypatch.setattr(execution, "_folder_bytes", cancel_then_measure)
    finished = export_execute(export_id=export.pk)

    assert finished.status == DatasetExport.Status.CANCELLED
    assert finished.message == f"Cancelled by {reviewer.username}; stopped."
    assert not export_folder(export).exists()


@pytest.mark.django_db
def test_changed_output_fails_export(reviewer, approved_run, django_capture_on_commit_callbacks):
    dataset = _dataset(reviewer)
    dataset_slide_add(dataset=dataset, slide=approved_run.slide, added_by=reviewer)
    export = _export(dataset, reviewer, django_capture_on_commit_callbacks)
    restored = storage_absolute(approved_run.restored_path)
    restored.write_bytes(restored.read_bytes() + b"\0")

    finished = export_execute(export_id=export.pk)

    assert finished.status == DatasetExport.Status.FAILED
    assert "changed since it was approved" in finished.error
    assert not export_folder(export).exists()
    finish = _audit(AuditEvent.Action.EXPORT_FINISH)
    assert finish[0].details["status"] == "failed"


@pytest.mark.django_db
def test_manifest_leak_fails_export(reviewer, approved_run, django_capture_on_commit_callbacks):
    dataset = dataset_create(
        name="Pen set", description="Made from tcga-green-pen.png", created_by=reviewer
    )
    dataset_slide_add(dataset=dataset, slide=approved_run.slide, added_by=reviewer)
    export = _export(dataset, reviewer, django_capture_on_commit_callbacks)

    finished = export_execute(export_id=export.pk)

    assert finished.status == DatasetExport.Status.FAILED
    assert "pen-set-v1-0001" in finished.error
    assert "tcga-green-pen" not in finished.error
    assert not export_folder(export).exists()


@pytest.mark.django_db
def test_object_store_receives_files(
    reviewer, approved_run, django_capture_on_commit_callbacks, settings, tmp_path
):
    bucket = tmp_path / "bucket"
    settings.INKWEB_EXPORT_STORAGE = parse_export_storage(f"file://{bucket}")
    dataset = _dataset(reviewer)
    dataset_slide_add(dataset=dataset, slide=approved_run.slide, added_by=reviewer)
    export = _export(dataset, reviewer, django_capture_on_commit_callbacks, target="object_store")

    finished = export_execute(export_id=export.pk)

    assert finished.status == DatasetExport.Status.SUCCEEDED, finished.error
    assert sorted(finished.object_store_names) == [
        "colon-teaching-set/v1/colon-teaching-set-v1-0001.tiff",
        "colon-teaching-set/v1/manifest.csv",
        "colon-teaching-set/v1/manifest.json",
    ]
    local = storage_absolute(finished.output_dir)
    for name in finished.object_store_names:
        assert (bucket / name).read_bytes() == (local / name.rsplit("/", 1)[1]).read_bytes()


def test_parse_export_storage_urls(settings):
    s3 = parse_export_storage(
        "s3://teaching-bucket/exports/inkweb", endpoint_url="http://127.0.0.1:9000"
    )
    assert s3["BACKEND"] == "storages.backends.s3.S3Storage"
    assert s3["OPTIONS"]["bucket_name"] == "teaching-bucket"
    assert s3["OPTIONS"]["location"] == "exports/inkweb"
    assert s3["OPTIONS"]["endpoint_url"] == "http://127.0.0.1:9000"
    settings.INKWEB_EXPORT_STORAGE = s3
    storage = export_object_storage()
    assert type(storage).__name__ == "S3Storage"
    assert storage.bucket_name == "teaching-bucket"

    folder = parse_export_storage("file:///srv/exports")
    assert folder["OPTIONS"] == {"location": "/srv/exports"}
    for bad in ("s3:///prefix", "ftp://host/x", "file://relative"):
        with pytest.raises(ImproperlyConfigured):
            parse_export_storage(bad)


# ---- progress -----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.django_db
def test_progress_throttles_and_cancels(reviewer, approved_run, django_capture_on_commit_callbacks):
    dataset = _dataset(reviewer)
    dataset_slide_add(dataset=dataset, slide=approved_run.slide, added_by=reviewer)
    export = _export(dataset, reviewer, django_capture_on_commit_callbacks)
    DatasetExport.objects.filter(pk=export.pk).update(status=DatasetExport.Status.RUNNING)
    clock = FakeClock()
    reporter = ExportProgressReporter(
        export_id=export.pk, dataset_id=dataset.pk, interval_s=0.5, clock=clock
    )
    callback = reporter.slide_callback(index=1, count=2, identifier="x-v1-0002")

    callback(ProgressEvent("export", 5, 10, "tile 5 of 10"))
    export.refresh_from_db()
    first = export.progress
    assert 0.45 < first < 0.9
    assert export.message.startswith("x-v1-0002 (2 of 2)")

    clock.now = 0.2
    callback(ProgressEvent("verify", 1, 1, "verified"))
    export.refresh_from_db()
    assert export.progress == first

    clock.now = 1.0
    export_cancel_flag_set(export_id=export.pk)
    with pytest.raises(ExportCancelled):
        callback(ProgressEvent("verify", 1, 1, "verified"))


@pytest.mark.django_db
def test_progress_stops_when_row_cancelled(
    reviewer, approved_run, django_capture_on_commit_callbacks
):
    dataset = _dataset(reviewer)
    dataset_slide_add(dataset=dataset, slide=approved_run.slide, added_by=reviewer)
    export = _export(dataset, reviewer, django_capture_on_commit_callbacks)
    DatasetExport.objects.filter(pk=export.pk).update(status=DatasetExport.Status.CANCELLED)
    reporter = ExportProgressReporter(export_id=export.pk, dataset_id=dataset.pk, interval_s=0)
    with pytest.raises(ExportCancelled):
        reporter.report(0.5, "export", "halfway")


def _manifest_member(*, reviewer_name: str, report: dict, options: dict):
    from datetime import UTC, datetime
    from types import SimpleNamespace

    reviewer = SimpleNamespace(get_username=lambda: reviewer_name)
    return SimpleNamespace(
        identifier="=set-v1-0001",
        run=SimpleNamespace(report=report, options=options),
        run_id=7,
        slide=SimpleNamespace(info={}),
        restored_sha256="c" * 64,
        review_id=3,
        review=SimpleNamespace(reviewer=reviewer, created_at=datetime(2026, 1, 2, tzinfo=UTC)),
    )


def test_manifest_csv_cells_not_formulas(tmp_path):
    from pipeline.export import ExportResult

    member = _manifest_member(
        reviewer_name="+rev",
        report={"models": {"ink": "@v1"}, "restore_method": "cyclegan"},
        options={},
    )
    result = ExportResult(
        path=tmp_path / "slide.tiff",
        identifier=member.identifier,
        sha256="d" * 64,
        size_bytes=10,
        width=4,
        height=3,
        mpp_x=0.5,
        mpp_y=0.5,
        levels=[(4, 3)],
        level0="byte-identical",
    )
    entry = manifest_slide_entry(member, result)
    assert entry["restore_method"] == "cyclegan"
    assert entry["reviewer"] == "+rev"

    rows = list(csv.DictReader(io.StringIO(manifest_csv_text({"slides": [entry]}))))
    assert rows[0]["reviewer"] == "'+rev"
    assert rows[0]["identifier"] == "'=set-v1-0001"
    assert rows[0]["models"] == "ink=@v1"
    assert rows[0]["restore_method"] == "cyclegan"
    assert rows[0]["sha256"] == "d" * 64
