"""The whole system through HTTP and WebSocket: upload, ingest, run, tiles, review."""

from __future__ import annotations

import io
import json
import threading

import pytest
import requests
import websocket
from PIL import Image

pytestmark = pytest.mark.integration

PASSWORD = "pathologist-password-1"


@pytest.fixture(scope="module")
def api(stack):
    stack.create_user("pat", PASSWORD, "uploader", "reviewer")
    return stack.login("pat", PASSWORD)


class SocketRecorder:
    """Collect every message of /ws/progress/ in a background thread."""

    def __init__(self, stack, session) -> None:
        self.messages: list[dict] = []
        self.socket = websocket.create_connection(
            f"ws://127.0.0.1:{stack.port}/ws/progress/",
            cookie=f"sessionid={session.cookies['sessionid']}",
            origin=stack.base_url,
            timeout=5,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                self.messages.append(json.loads(self.socket.recv()))
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketException, OSError, ValueError):
                return

    def close(self) -> None:
        self.socket.close()


@pytest.fixture(scope="module")
def recorder(stack, api):
    socket = SocketRecorder(stack, api)
    yield socket
    socket.close()


@pytest.fixture(scope="module")
def processed(stack, api, recorder, shared_data):
    """Upload the pen-marked image, wait for ingest, run ink removal and wait for it."""
    path = shared_data / "ink" / "tcga-green-pen.png"
    with open(path, "rb") as handle:
        response = api.post(f"{stack.base_url}/api/slides/", files={"file": handle}, timeout=60)
    assert response.status_code == 201, response.text
    slide_id = response.json()["id"]

    def ingested():
        slide = api.get(f"{stack.base_url}/api/slides/{slide_id}/", timeout=10).json()
        return slide if slide["ingest_status"] != "pending" else None

    slide = stack.wait_for(ingested, timeout=120, description="ingest")
    started = api.post(f"{stack.base_url}/api/slides/{slide_id}/runs/", json={}, timeout=30)
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]

    def finished():
        run = api.get(f"{stack.base_url}/api/runs/{run_id}/", timeout=10).json()
        return run if run["status"] not in {"queued", "running"} else None

    run = stack.wait_for(finished, timeout=300, description=f"run {run_id}", interval=1)
    return {"slide": slide, "run": run}


def test_upload_ingested(processed):
    slide = processed["slide"]
    assert slide["ingest_status"] == "ready", slide["ingest_error"]
    assert (slide["width"], slide["height"]) == (754, 631)
    assert slide["thumbnail_url"]


def test_run_succeeded(processed):
    run = processed["run"]
    assert run["status"] == "succeeded", run["error"]
    assert run["progress"] == 1.0
    assert run["device"] == "cpu"
    assert run["report"]["input"]["sha256_before"] == processed["slide"]["sha256"]
    assert run["report"]["input"]["sha256_after"] == processed["slide"]["sha256"]


def test_progress_pushed_over_websocket(stack, processed, recorder):
    run_id = processed["run"]["id"]

    def final_message():
        return [
            message
            for message in recorder.messages
            if message.get("event") == "run" and message["run"]["id"] == run_id
        ]

    messages = stack.wait_for(
        lambda: [m for m in final_message() if m["run"]["status"] == "succeeded"],
        timeout=10,
        description="the succeeded run message",
    )
    assert messages[-1]["run"]["slide_id"] == processed["slide"]["id"]
    statuses = {message["run"]["status"] for message in final_message()}
    assert "running" in statuses
    assert any(m.get("event") == "slide" for m in recorder.messages)


def test_websocket_rejects_anonymous(stack):
    # A consumer that closes before accepting makes the server reject the handshake with 403.
    with pytest.raises(websocket.WebSocketBadStatusException) as error:
        websocket.create_connection(
            f"ws://127.0.0.1:{stack.port}/ws/progress/", origin=stack.base_url, timeout=5
        )
    assert error.value.status_code == 403


def test_websocket_rejects_foreign_origin(stack, api):
    with pytest.raises(websocket.WebSocketBadStatusException) as error:
        websocket.create_connection(
            f"ws://127.0.0.1:{stack.port}/ws/progress/",
            cookie=f"sessionid={api.cookies['sessionid']}",
            origin="http://evil.example",
            timeout=5,
        )
    assert error.value.status_code == 403


@pytest.mark.parametrize(
    ("kind", "fmt"), [("original", "jpeg"), ("restored", "jpeg"), ("mask", "png")]
)
def test_tiles_of_each_kind(stack, api, processed, kind, fmt):
    slide_id = processed["slide"]["id"]
    info = api.get(f"{stack.base_url}/api/slides/{slide_id}/tiles/{kind}/info", timeout=10).json()
    assert (info["sizeX"], info["sizeY"]) == (754, 631)
    if kind != "original":
        assert info["run_id"] == processed["run"]["id"]

    top = info["levels"] - 1
    url = stack.base_url + info["tile_url_template"].format(z=top, x=0, y=0)
    tile = api.get(url, timeout=30)
    assert tile.status_code == 200, tile.text
    assert tile.headers["Content-Type"] == f"image/{fmt}"
    image = Image.open(io.BytesIO(tile.content))
    assert image.size == (min(info["tileWidth"], 754), min(info["tileHeight"], 631))
    again = api.get(url, headers={"If-None-Match": tile.headers["ETag"]}, timeout=10)
    assert again.status_code == 304


def test_review_recorded_and_read_back(stack, api, processed):
    slide_id = processed["slide"]["id"]
    url = f"{stack.base_url}/api/slides/{slide_id}/reviews/"
    created = api.post(url, json={"decision": "approve", "note": "green ink gone"}, timeout=10)
    assert created.status_code == 201, created.text

    history = api.get(url, timeout=10).json()
    assert history[0]["decision"] == "approve"
    assert history[0]["note"] == "green ink gone"
    assert history[0]["reviewer"] == "pat"
    assert history[0]["run_id"] == processed["run"]["id"]
    slide = api.get(f"{stack.base_url}/api/slides/{slide_id}/", timeout=10).json()
    assert slide["state"] == "approved"


def test_bad_upload_leaves_nothing(stack, api, shared_data, processed):
    before = sorted(path for path in stack.storage.rglob("*") if path.is_file())
    path = shared_data / "bad" / "random-bytes.svs"
    with open(path, "rb") as handle:
        response = api.post(f"{stack.base_url}/api/slides/", files={"file": handle}, timeout=30)
    assert response.status_code == 400
    assert response.json()["code"] == "slide_rejected"
    assert "random-bytes.svs" in response.json()["detail"]
    after = sorted(path for path in stack.storage.rglob("*") if path.is_file())
    assert after == before


def test_static_files_served_without_debug(stack):
    response = requests.get(
        f"{stack.base_url}/static/vendor/openseadragon/openseadragon.min.js", timeout=10
    )
    assert response.status_code == 200
    assert "OpenSeadragon" in response.text[:2000]
