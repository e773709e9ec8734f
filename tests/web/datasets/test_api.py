"""Dataset API and pages: roles, draft changes, exports, progress socket and downloads."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from inkweb.core.broadcast import broadcast_send
from inkweb.core.queues import queue_get
from inkweb.datasets.consumers import ExportProgressConsumer
from inkweb.datasets.events import dataset_group
from inkweb.datasets.execution import export_execute
from inkweb.datasets.models import DatasetExport
from inkweb.datasets.services import dataset_create
from tests.web.conftest import client_for


def _create(client, name="Colon teaching set"):
    return client.post("/api/datasets/", {"name": name, "description": "Pen marks"}, format="json")


@pytest.fixture
def dataset_with_slide(reviewer, approved_run):
    client = client_for(reviewer)
    dataset = _create(client).json()
    added = client.post(
        f"/api/datasets/{dataset['id']}/slides/", {"slide": approved_run.slide_id}, format="json"
    )
    assert added.status_code == 201, added.content
    return client, dataset


@pytest.fixture
def finished_export(dataset_with_slide, django_capture_on_commit_callbacks):
    client, dataset = dataset_with_slide
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(f"/api/datasets/{dataset['id']}/exports/", {}, format="json")
    assert started.status_code == 201, started.content
    export_execute(export_id=started.json()["id"])
    return client, client.get(f"/api/exports/{started.json()['id']}/").json()


@pytest.mark.django_db
def test_create_and_list(reviewer, uploader):
    client = client_for(reviewer)
    created = _create(client)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["slug"] == "colon-teaching-set"
    assert body["member_count"] == 0
    assert body["latest_version"] is None

    listed = client_for(uploader).get("/api/datasets/").json()
    assert [item["name"] for item in listed] == ["Colon teaching set"]

    again = _create(client)
    assert again.status_code == 409
    assert again.json()["code"] == "dataset_name_taken"


@pytest.mark.django_db
def test_writes_need_reviewer(uploader, reviewer, approved_run):
    client = client_for(uploader)
    assert _create(client).status_code == 403
    dataset = dataset_create(name="Set", created_by=reviewer)
    added = client.post(
        f"/api/datasets/{dataset.pk}/slides/", {"slide": approved_run.slide_id}, format="json"
    )
    assert added.status_code == 403
    assert added.json()["code"] == "permission_denied"
    assert client.post(f"/api/datasets/{dataset.pk}/exports/", {}, format="json").status_code == 403


@pytest.mark.django_db
def test_list_query_count(reviewer, django_assert_max_num_queries):
    for index in range(5):
        dataset_create(name=f"Set {index}", created_by=reviewer)
    client = client_for(reviewer)
    with django_assert_max_num_queries(6):
        response = client.get("/api/datasets/")
    assert len(response.json()) == 5


@pytest.mark.django_db
def test_add_and_remove_slide(dataset_with_slide, approved_run):
    client, dataset = dataset_with_slide
    detail = client.get(f"/api/datasets/{dataset['id']}/").json()
    assert [member["slide_id"] for member in detail["members"]] == [approved_run.slide_id]
    assert detail["members"][0]["state"] == "approved"
    assert detail["members"][0]["approved_run_id"] == approved_run.pk

    duplicate = client.post(
        f"/api/datasets/{dataset['id']}/slides/", {"slide": approved_run.slide_id}, format="json"
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "slide_already_member"

    removed = client.delete(f"/api/datasets/{dataset['id']}/slides/{approved_run.slide_id}/")
    assert removed.status_code == 200
    assert removed.json()["members"] == []
    missing = client.delete(f"/api/datasets/{dataset['id']}/slides/{approved_run.slide_id}/")
    assert missing.status_code == 404
    assert missing.json()["code"] == "slide_not_member"


@pytest.mark.django_db
def test_add_unapproved_slide_conflicts(reviewer, succeeded_run):
    client = client_for(reviewer)
    dataset = _create(client).json()
    response = client.post(
        f"/api/datasets/{dataset['id']}/slides/", {"slide": succeeded_run.slide_id}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "slide_not_reviewed"
    assert "approve run" in response.json()["detail"]


@pytest.mark.django_db
def test_export_start_and_status(dataset_with_slide, django_capture_on_commit_callbacks):
    client, dataset = dataset_with_slide
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(f"/api/datasets/{dataset['id']}/exports/", {}, format="json")
    assert started.status_code == 201, started.content
    body = started.json()
    assert body["status"] == "queued"
    assert body["version"] == 1
    assert body["target"] == "server"
    assert f"export-{body['id']}" in queue_get("ingest").job_ids

    status = client.get(f"/api/exports/{body['id']}/").json()
    assert status["members"][0]["identifier"] == "colon-teaching-set-v1-0001"
    versions = client.get(f"/api/datasets/{dataset['id']}/").json()["versions"]
    assert [(version["number"], version["export"]["status"]) for version in versions] == [
        (1, "queued")
    ]

    not_ready = client.get(f"/api/exports/{body['id']}/download/")
    assert not_ready.status_code == 409
    assert not_ready.json()["code"] == "export_not_finished"

    cancelled = client.post(f"/api/exports/{body['id']}/cancel/")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"


@pytest.mark.django_db
def test_empty_export_conflicts(reviewer):
    client = client_for(reviewer)
    dataset = _create(client).json()
    response = client.post(f"/api/datasets/{dataset['id']}/exports/", {}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "dataset_empty"


@pytest.mark.django_db
def test_download_zip_of_export(finished_export):
    client, export = finished_export
    assert export["status"] == "succeeded", export["error"]
    assert export["manifest"]["slide_count"] == 1

    response = client.get(export["urls"]["download"])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert 'filename="colon-teaching-set-v1.zip"' in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == [
        "colon-teaching-set-v1/colon-teaching-set-v1-0001.tiff",
        "colon-teaching-set-v1/manifest.csv",
        "colon-teaching-set-v1/manifest.json",
    ]
    manifest = json.loads(archive.read("colon-teaching-set-v1/manifest.json"))
    entry = manifest["slides"][0]
    tiff = archive.read(f"colon-teaching-set-v1/{entry['file']}")
    assert hashlib.sha256(tiff).hexdigest() == entry["sha256"]


@pytest.mark.django_db
def test_download_over_limit_conflicts(finished_export, settings):
    client, export = finished_export
    settings.INKWEB_EXPORT_ZIP_MAX_BYTES = 1000
    response = client.get(export["urls"]["download"])
    assert response.status_code == 409
    assert response.json()["code"] == "export_too_large"
    assert export["output_dir"] in response.json()["detail"]


@pytest.mark.django_db
def test_manifest_downloads(finished_export):
    client, export = finished_export
    as_json = client.get(export["urls"]["manifest_json"])
    assert as_json.status_code == 200
    assert json.loads(as_json.content) == export["manifest"]
    as_csv = client.get(export["urls"]["manifest_csv"])
    assert as_csv.status_code == 200
    assert as_csv["Content-Type"].startswith("text/csv")
    lines = as_csv.content.decode().splitlines()
    assert lines[0].startswith("identifier,file,width,height,mpp_x,mpp_y")
    assert lines[1].startswith("colon-teaching-set-v1-0001,colon-teaching-set-v1-0001.tiff,")


@pytest.mark.django_db
def test_pages_render(finished_export, reviewer):
    client, export = finished_export
    listing = client.get("/datasets/")
    assert listing.status_code == 200
    assert b"Colon teaching set" in listing.content
    assert b'href="/datasets/"' in listing.content
    detail = client.get(f"/datasets/{export['dataset_id']}/")
    assert detail.status_code == 200
    assert export["urls"]["download"].encode() in detail.content
    assert export["urls"]["manifest_csv"].encode() in detail.content
    assert client.get("/datasets/999999/").status_code == 404


@pytest.mark.django_db
def test_progress_socket_delivers_export_events(reviewer):
    async def scenario():
        communicator = WebsocketCommunicator(
            ExportProgressConsumer.as_asgi(), "/ws/exports/?dataset=4"
        )
        communicator.scope["user"] = reviewer
        connected, _ = await communicator.connect()
        assert connected

        payload = {"id": 9, "dataset_id": 4, "status": DatasetExport.Status.RUNNING}
        sent = await sync_to_async(broadcast_send)(
            groups=[dataset_group(4)], message={"type": "export.progress", "export": payload}
        )
        assert sent
        assert await communicator.receive_json_from(timeout=5) == {
            "event": "export",
            "export": payload,
        }
        await sync_to_async(broadcast_send)(
            groups=[dataset_group(5)], message={"type": "export.progress", "export": payload}
        )
        assert await communicator.receive_nothing(timeout=0.5)
        await communicator.disconnect()

    async_to_sync(scenario)()
