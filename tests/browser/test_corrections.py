"""Region corrections in headless Chromium: draw a rectangle, keep the original, see it."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from tests.browser.conftest import save_screenshot
from tests.browser.test_viewer import FULLY_LOADED

pytestmark = pytest.mark.browser

# Page coordinates of a level-0 point in the restored viewer.
SCREEN_POINT = """([x, y]) => {
  const viewer = window.inkwebViewer.restored;
  const point = viewer.world.getItemAt(0).imageToViewerElementCoordinates(
    new OpenSeadragon.Point(x, y));
  const box = viewer.canvas.getBoundingClientRect();
  return {x: box.left + point.x, y: box.top + point.y};
}"""

RESTORED_VIEW = """() => {
  const s = window.inkwebViewer.imageView(window.inkwebViewer.restored);
  return {x: s.center.x, y: s.center.y, zoom: s.zoom};
}"""


@pytest.fixture(scope="module")
def api(page):
    def get(url: str):
        response = page.request.get(url)
        assert response.ok, (url, response.status)
        return response

    return get


@pytest.fixture(scope="module")
def processed(page, stack, api):
    """Run ink removal on the pen-marked slide and wait for its restored viewer."""
    slides = api(f"{stack.base_url}/api/slides/?q=tcga-green-pen").json()["results"]
    slide_id = slides[0]["id"]
    page.goto(f"{stack.base_url}/slides/{slide_id}/")
    page.click("#run-start")
    page.wait_for_url(re.compile(r".*\?run=\d+.*"), timeout=300_000)
    page.wait_for_function(FULLY_LOADED, timeout=60_000)
    run_id = int(re.search(r"\?run=(\d+)", page.url).group(1))
    return slide_id, run_id


def _tile_pixels(api, base: str, slide_id: int, kind: str, run_id: int | None,
                 x: int, y: int, width: int, height: int) -> np.ndarray:
    """Read a level-0 area through the tile API as PNG; it must lie within one tile."""
    query = f"?run={run_id}" if run_id else ""
    info = api(f"{base}/api/slides/{slide_id}/tiles/{kind}/info{query}").json()
    column, row = x // info["tileWidth"], y // info["tileHeight"]
    assert (x + width - 1) // info["tileWidth"] == column
    assert (y + height - 1) // info["tileHeight"] == row
    url = f"{base}/api/slides/{slide_id}/tiles/{kind}/{info['levels'] - 1}/{column}/{row}.png"
    tile = np.asarray(Image.open(io.BytesIO(api(url + query).body())).convert("RGB"))
    left, top = x - column * info["tileWidth"], y - row * info["tileHeight"]
    return tile[top:top + height, left:left + width]


def _settled_view(page) -> dict:
    """Return the restored viewer's view once it has stopped moving."""
    view = page.evaluate(RESTORED_VIEW)
    for _ in range(40):
        page.wait_for_timeout(250)
        latest = page.evaluate(RESTORED_VIEW)
        if latest == view:
            return view
        view = latest
    raise AssertionError(f"the restored viewer kept moving: {view}")


def _changed_area(api, base, slide_id, run_id) -> tuple[int, int, int, int]:
    """Return a 96 x 96 area, inside one tile of both images, that the run changed most."""
    report = api(f"{base}/api/runs/{run_id}/").json()["report"]
    region = max(report["regions"], key=lambda item: item["width"] * item["height"])
    size = 96
    best, best_changed = None, -1
    for top in range(region["y"], region["y"] + region["height"] - size, 48):
        for left in range(region["x"], region["x"] + region["width"] - size, 48):
            # Keep the area inside one 256-pixel tile, which divides both tile grids.
            if left // 256 != (left + size - 1) // 256 or top // 256 != (top + size - 1) // 256:
                continue
            original = _tile_pixels(api, base, slide_id, "original", None, left, top, size, size)
            restored = _tile_pixels(api, base, slide_id, "restored", run_id, left, top, size, size)
            changed = int((original != restored).any(axis=2).sum())
            if changed > best_changed:
                best, best_changed = (left, top, size, size), changed
    assert best is not None and best_changed > 0, report["regions"]
    return best


def test_keep_original_revision(processed, page, stack, api):
    slide_id, run_id = processed
    base = stack.base_url
    x, y, width, height = _changed_area(api, base, slide_id, run_id)

    page.locator("body").press("c")
    page.wait_for_selector("#correction-form:not([hidden])")
    view_before = _settled_view(page)  # the form takes room above the image, which resizes
    start = page.evaluate(SCREEN_POINT, [x + 0.5, y + 0.5])
    end = page.evaluate(SCREEN_POINT, [x + width - 0.5, y + height - 0.5])
    page.mouse.move(start["x"], start["y"])
    page.mouse.down()
    page.mouse.move((start["x"] + end["x"]) / 2, (start["y"] + end["y"]) / 2, steps=4)
    page.mouse.move(end["x"], end["y"], steps=4)
    page.mouse.up()
    page.wait_for_timeout(500)

    drawn = page.evaluate("() => window.inkwebCorrections.rectangles")
    assert len(drawn) == 1
    rectangle = drawn[0]
    # The drag covers the area to within a pixel of screen rounding at this zoom.
    assert abs(rectangle["x"] - x) <= 2
    assert abs(rectangle["y"] - y) <= 2
    assert abs(rectangle["width"] - width) <= 3
    assert abs(rectangle["height"] - height) <= 3
    assert page.evaluate(RESTORED_VIEW) == pytest.approx(view_before)  # the drag did not pan
    assert page.locator("#correction-submit").is_disabled()

    page.check("input[name='correction-action'][value='keep-original']")
    assert page.locator("#correction-queue li").inner_text().startswith(
        f"{rectangle['width']} × {rectangle['height']} px")
    save_screenshot(page, "corrections-drawn")
    page.click("#correction-submit")

    page.wait_for_url(re.compile(rf".*\?run=(?!{run_id}\b)\d+.*"), timeout=300_000)
    page.wait_for_function(FULLY_LOADED, timeout=60_000)
    revision_id = int(re.search(r"\?run=(\d+)", page.url).group(1))
    assert revision_id > run_id
    assert f"run #{revision_id}" in page.locator(".viewer-pane").nth(1).locator(
        ".pane-title").inner_text()
    item = page.locator(f"#revision-list li[data-run-id='{revision_id}']")
    assert "revision of #" + str(run_id) in item.inner_text()
    assert "1 region" in item.inner_text()
    assert page.locator("#revision-list li.current").get_attribute("data-run-id") == str(
        revision_id)
    save_screenshot(page, "corrections-revision")

    revision = api(f"{base}/api/runs/{revision_id}/").json()
    assert revision["kind"] == "revision"
    assert revision["parent_id"] == run_id
    assert revision["status"] == "succeeded"
    assert revision["corrections"] == [
        {key: rectangle[key] for key in ("x", "y", "width", "height")}
        | {"action": "keep-original"}]

    # Inside the rectangle the restored tiles now show the scanned pixels again.
    inner = (rectangle["x"] + 2, rectangle["y"] + 2, rectangle["width"] - 4,
             rectangle["height"] - 4)
    original = _tile_pixels(api, base, slide_id, "original", None, *inner)
    before = _tile_pixels(api, base, slide_id, "restored", run_id, *inner)
    after = _tile_pixels(api, base, slide_id, "restored", revision_id, *inner)
    assert (before != original).any()
    assert np.array_equal(after, original)

    page.check(f"#revision-list li[data-run-id='{revision_id}'] input[type=checkbox]")
    assert page.evaluate(f"() => window.inkwebCorrections.outlineCount({revision_id})") == 2
    page.mouse.move(5, 5)
    page.wait_for_timeout(300)
    assert page.evaluate(f"() => window.inkwebCorrections.outlineCount({revision_id})") == 2
    save_screenshot(page, "corrections-outlines")
    assert page.console_errors == []
