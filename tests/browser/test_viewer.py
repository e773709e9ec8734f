"""The viewer in headless Chromium: tiles, synchronised panning, mask overlay, review."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import save_screenshot

pytestmark = pytest.mark.browser

VIEW_STATE = """() => {
  const v = window.inkwebViewer;
  const view = (viewer) => {
    const s = v.imageView(viewer);
    return s && {x: s.center.x, y: s.center.y, zoom: s.zoom};
  };
  return {original: view(v.original), restored: view(v.restored)};
}"""

FULLY_LOADED = """() => {
  const v = window.inkwebViewer;
  const loaded = (viewer) =>
    viewer && viewer.world.getItemCount() > 0 && viewer.world.getItemAt(0).getFullyLoaded();
  return loaded(v.original) && loaded(v.restored);
}"""


def _slide_id(stack, api_get, name: str) -> int:
    slides = api_get(f"{stack.base_url}/api/slides/?q={name}")["results"]
    return slides[0]["id"]


@pytest.fixture(scope="module")
def api_get(page):
    def get(url: str):
        response = page.request.get(url)
        assert response.ok, (url, response.status)
        return response.json()

    return get


@pytest.fixture(scope="module")
def tile_responses(page):
    seen: list[tuple[str, int]] = []
    page.on(
        "response",
        lambda response: (
            seen.append((response.url, response.status)) if "/tiles/" in response.url else None
        ),
    )
    return seen


@pytest.fixture(scope="module")
def processed_viewer(page, stack, api_get, tile_responses):
    """Open the pen-marked slide, press Remove ink and wait for the restored viewer."""
    slide_id = _slide_id(stack, api_get, "tcga-green-pen")
    page.goto(f"{stack.base_url}/")
    save_screenshot(page, "slide-list")
    page.click(f"tr[data-slide-id='{slide_id}'] a.slide-name")
    page.wait_for_url(re.compile(rf".*/slides/{slide_id}/.*"))
    page.click("#run-start")
    page.wait_for_selector("#run-progress:not([hidden]), #run-badge.run-succeeded", timeout=60_000)
    save_screenshot(page, "viewer-running")
    # The page reloads itself with ?run=ID when the run succeeds.
    page.wait_for_url(re.compile(r".*\?run=\d+.*"), timeout=300_000)
    page.wait_for_function(FULLY_LOADED, timeout=60_000)
    save_screenshot(page, "viewer-processed")
    return slide_id


def test_list_shows_slides(page, stack):
    page.goto(f"{stack.base_url}/")
    rows = page.locator("#slide-table tbody tr[data-slide-id]")
    assert rows.count() == 2
    assert page.locator(".tab.active").inner_text().startswith("All")


def test_both_viewers_load_tiles(processed_viewer, page, tile_responses):
    kinds = {
        kind
        for url, status in tile_responses
        for kind in ("original", "restored")
        if f"/tiles/{kind}/" in url and status == 200
    }
    assert kinds == {"original", "restored"}
    assert not [url for url, status in tile_responses if status >= 400]
    assert page.console_errors == []


def _drag(page, selector: str, dx: int, dy: int) -> None:
    box = page.locator(selector).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx / 2, y + dy / 2, steps=5)
    page.mouse.move(x + dx, y + dy, steps=5)
    page.mouse.up()
    page.wait_for_timeout(1200)


def test_panning_original_moves_restored(processed_viewer, page):
    page.keyboard.press("+")
    page.wait_for_timeout(800)
    before = page.evaluate(VIEW_STATE)
    _drag(page, "#viewer-original", -120, -80)
    after = page.evaluate(VIEW_STATE)

    assert after["original"]["x"] != pytest.approx(before["original"]["x"], abs=1)
    assert after["restored"]["x"] == pytest.approx(after["original"]["x"], abs=1)
    assert after["restored"]["y"] == pytest.approx(after["original"]["y"], abs=1)
    assert after["restored"]["zoom"] == pytest.approx(after["original"]["zoom"], rel=1e-3)


def test_panning_restored_moves_original(processed_viewer, page):
    before = page.evaluate(VIEW_STATE)
    _drag(page, "#viewer-restored", 90, 60)
    after = page.evaluate(VIEW_STATE)

    assert after["restored"]["x"] != pytest.approx(before["restored"]["x"], abs=1)
    assert after["original"]["x"] == pytest.approx(after["restored"]["x"], abs=1)
    assert after["original"]["y"] == pytest.approx(after["restored"]["y"], abs=1)


def test_position_in_url_hash(processed_viewer, page, stack):
    view = page.evaluate(VIEW_STATE)["original"]
    assert re.search(r"#x=\d+&y=\d+&zoom=[\d.e-]+", page.url)

    target = f"{stack.base_url}/slides/{processed_viewer}/#x=200&y=300&zoom=2"
    page.goto("about:blank")
    page.goto(target)
    page.wait_for_function(FULLY_LOADED, timeout=60_000)
    opened = page.evaluate(VIEW_STATE)
    assert opened["original"]["x"] == pytest.approx(200, abs=2)
    assert opened["original"]["y"] == pytest.approx(300, abs=2)
    assert opened["original"]["zoom"] == pytest.approx(2, rel=0.01)
    assert opened["restored"]["x"] == pytest.approx(200, abs=2)
    assert view is not None


def test_mask_toggle(processed_viewer, page, tile_responses):
    mask_opacity = (
        "() => { const m = window.inkwebViewer.mask; return m.item ? m.item.getOpacity() : null; }"
    )
    page.wait_for_function("() => window.inkwebViewer.mask.item !== null", timeout=30_000)
    assert page.evaluate(mask_opacity) == 0

    page.locator("body").press("m")
    page.wait_for_timeout(1500)
    assert page.evaluate(mask_opacity) > 0
    assert page.locator("#mask-toggle").is_checked()
    assert any("/tiles/mask/" in url and status == 200 for url, status in tile_responses)
    save_screenshot(page, "viewer-mask")

    page.locator("body").press("m")
    assert page.evaluate(mask_opacity) == 0
    assert not page.locator("#mask-toggle").is_checked()


def test_sync_toggle_key(processed_viewer, page):
    page.locator("body").press("s")
    assert page.locator("#sync-state").inner_text() == "off"
    before = page.evaluate(VIEW_STATE)
    _drag(page, "#viewer-original", 100, 0)
    after = page.evaluate(VIEW_STATE)
    assert after["restored"]["x"] == pytest.approx(before["restored"]["x"], abs=0.5)
    page.locator("body").press("s")
    assert page.locator("#sync-state").inner_text() == "on"


def test_approve_records_decision(processed_viewer, page, stack, api_get):
    page.locator("body").press("a")
    page.fill("#review-note", "Green ink removed, tissue intact")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#review-history li .decision-approve", timeout=15_000)
    save_screenshot(page, "viewer-approved")

    history = api_get(f"{stack.base_url}/api/slides/{processed_viewer}/reviews/")
    assert history[0]["decision"] == "approve"
    assert history[0]["note"] == "Green ink removed, tissue intact"
    assert history[0]["reviewer"] == "pat"
    slide = api_get(f"{stack.base_url}/api/slides/{processed_viewer}/")
    assert slide["state"] == "approved"


def test_scale_bar_follows_zoom(page, stack, api_get):
    slide_id = _slide_id(stack, api_get, "cmu-1-small-region")
    page.goto(f"{stack.base_url}/slides/{slide_id}/")
    page.wait_for_function(
        "() => window.inkwebViewer.original && window.inkwebViewer.original.world.getItemAt(0)",
        timeout=30_000,
    )
    page.wait_for_timeout(1500)
    label = page.locator("#viewer-original .scalebar").inner_text()
    assert re.fullmatch(r"\d+(\.\d+)? (µm|mm)", label.strip()), label
    width = page.evaluate(
        "() => document.querySelector('#viewer-original .scalebar-line').offsetWidth"
    )
    assert 40 <= width <= 130
    save_screenshot(page, "viewer-original-only")


def test_run_with_another_method(processed_viewer, page, stack, api_get):
    first_run = api_get(f"{stack.base_url}/api/slides/{processed_viewer}/")[
        "latest_succeeded_run_id"]
    page.goto(f"{stack.base_url}/slides/{processed_viewer}/?run={first_run}")
    page.select_option("#run-method", "paired")
    page.click("#run-start")
    page.wait_for_url(re.compile(rf".*\?run=(?!{first_run}\b)\d+.*"), timeout=300_000)
    page.wait_for_function(FULLY_LOADED, timeout=60_000)
    save_screenshot(page, "viewer-paired-method")
    run_id = int(re.search(r"\?run=(\d+)", page.url).group(1))
    assert "Paired U-Net" in page.inner_text(".viewer-pane:nth-child(2) .pane-title")
    assert "Paired U-Net" in page.inner_text("#report-panel")
    run = api_get(f"{stack.base_url}/api/runs/{run_id}/")
    assert run["options"]["restore_method"] == "paired"
    assert run["report"]["restore_method"] == "paired"
