"""Fixtures of the browser tests: a live deployment, a processed slide and Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.datapaths import REPO_ROOT
from tests.integration.stack import LiveStack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO_ROOT / "test-artifacts"
USERNAME = "pat"
PASSWORD = "pathologist-password-1"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, shared_data):
    deployment = LiveStack(tmp_path_factory.mktemp("browser"), collect_static=True)
    try:
        deployment.start()
        deployment.create_user(USERNAME, PASSWORD, "uploader", "reviewer")
        deployment.manage(
            "inkweb_import",
            str(shared_data / "ink" / "tcga-green-pen.png"),
            str(shared_data / "slides" / "cmu-1-small-region.svs"),
            "--user",
            USERNAME,
        )
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(
            f"Chromium not found at {CHROMIUM}; install it with `apt-get install -y chromium`"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser, stack):
    """A signed-in page, reused by the tests of a module in order."""
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.console_errors = []
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))
    page.goto(f"{stack.base_url}/accounts/login/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{stack.base_url}/")
    yield page
    context.close()


def save_screenshot(page, name: str) -> Path:
    """Save a PNG of the page under test-artifacts/ and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def clear_artifacts() -> None:
    """Remove screenshots of earlier runs."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
