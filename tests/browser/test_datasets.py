"""Datasets in headless Chromium: create, add an approved slide, export and download the zip."""

from __future__ import annotations

import hashlib
import json
import re
import time
import zipfile

import pytest

from tests.browser.conftest import save_screenshot

pytestmark = pytest.mark.browser


def _csrf(page) -> dict[str, str]:
    token = next(
        cookie["value"] for cookie in page.context.cookies() if cookie["name"] == "csrftoken"
    )
    return {"X-CSRFToken": token, "Content-Type": "application/json"}


def _wait_for(check, *, timeout_s: float, description: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1)
    raise TimeoutError(f"{description} did not happen within {timeout_s} s")


@pytest.fixture(scope="module")
def approved_slide(page, stack):
    """Process the pen-marked slide through the API and approve its run."""
    base = stack.base_url
    slides = page.request.get(f"{base}/api/slides/?q=tcga-green-pen").json()["results"]
    slide_id = slides[0]["id"]
    started = page.request.post(
        f"{base}/api/slides/{slide_id}/runs/", data=json.dumps({}), headers=_csrf(page)
    )
    assert started.status == 201, started.text()
    run_id = started.json()["id"]

    def succeeded():
        run = page.request.get(f"{base}/api/runs/{run_id}/").json()
        assert run["status"] not in ("failed", "cancelled"), run
        return run["status"] == "succeeded"

    _wait_for(succeeded, timeout_s=300, description=f"run {run_id}")
    approved = page.request.post(
        f"{base}/api/slides/{slide_id}/reviews/",
        data=json.dumps({"decision": "approve", "run": run_id}),
        headers=_csrf(page),
    )
    assert approved.status == 201, approved.text()
    return slide_id


def test_export_and_download_dataset(page, stack, approved_slide, tmp_path):
    page.goto(f"{stack.base_url}/")
    page.click("nav.topnav a:has-text('Datasets')")
    page.wait_for_url(f"{stack.base_url}/datasets/")
    page.fill("#dataset-name", "Browser teaching set")
    page.fill("#dataset-description", "Green pen, restored")
    page.click("#dataset-create")
    page.wait_for_url(re.compile(r".*/datasets/\d+/$"))

    page.select_option("#slide-add-select", str(approved_slide))
    page.click("#slide-add")
    page.wait_for_selector(f"#member-table tr[data-slide-id='{approved_slide}']")
    assert page.locator("#member-table .state-approved").count() == 1

    page.click("#export-start")
    page.wait_for_selector("#export-status:not([hidden])")
    save_screenshot(page, "dataset-exporting")
    page.wait_for_selector("#export-status[data-status='succeeded']", timeout=120_000)
    assert page.locator("#export-progress").get_attribute("aria-valuenow") == "100"
    # The page reloads itself to list the new version with its download links.
    link = page.wait_for_selector("#version-list li[data-version='1'] a.download-zip")
    save_screenshot(page, "dataset-exported")

    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename == "browser-teaching-set-v1.zip"
    archive_path = tmp_path / download.suggested_filename
    download.save_as(archive_path)

    with zipfile.ZipFile(archive_path) as archive:
        names = sorted(archive.namelist())
        assert names == [
            "browser-teaching-set-v1/browser-teaching-set-v1-0001.tiff",
            "browser-teaching-set-v1/manifest.csv",
            "browser-teaching-set-v1/manifest.json",
        ]
        manifest = json.loads(archive.read("browser-teaching-set-v1/manifest.json"))
        tiff = archive.read("browser-teaching-set-v1/browser-teaching-set-v1-0001.tiff")
    assert manifest["slides"][0]["identifier"] == "browser-teaching-set-v1-0001"
    assert hashlib.sha256(tiff).hexdigest() == manifest["slides"][0]["sha256"]
    assert tiff[:4] in (b"II+\x00", b"MM\x00+")
    assert b"tcga-green-pen" not in tiff.lower()
    assert page.console_errors == []

    page.goto(f"{stack.base_url}/datasets/")
    row = page.locator("#dataset-table tr[data-dataset-id]")
    assert row.count() == 1
    assert "v1" in row.inner_text()
    save_screenshot(page, "dataset-list")
