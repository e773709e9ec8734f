"""The review queue and pinned comments in headless Chromium."""

from __future__ import annotations

import re
import time

import pytest

from tests.browser.conftest import save_screenshot

pytestmark = pytest.mark.browser

FULLY_LOADED = """() => {
  const v = window.inkwebViewer;
  const loaded = (viewer) =>
    viewer && viewer.world.getItemCount() > 0 && viewer.world.getItemAt(0).getFullyLoaded();
  return loaded(v.original) && loaded(v.restored);
}"""

VIEW_CENTRES = """() => {
  const v = window.inkwebViewer;
  const centre = (viewer) => v.imageView(viewer).center;
  return {original: centre(v.original), restored: centre(v.restored)};
}"""


@pytest.fixture(scope="module")
def api(page, stack):
    """GET and POST helpers that use the signed-in page's session and CSRF cookie."""

    def get(path: str):
        response = page.request.get(f"{stack.base_url}{path}")
        assert response.ok, (path, response.status, response.text())
        return response.json()

    def post(path: str, data: dict):
        token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
        response = page.request.post(
            f"{stack.base_url}{path}", data=data, headers={"X-CSRFToken": token}
        )
        assert response.ok, (path, response.status, response.text())
        return response.json()

    return get, post


@pytest.fixture(scope="module")
def queued_slide_ids(api, stack) -> list[int]:
    """Run ink removal on both imported slides, one after the other; return queue order."""
    get, post = api
    slide_ids = [slide["id"] for slide in get("/api/slides/?ordering=name")["results"]]
    assert len(slide_ids) == 2
    for slide_id in slide_ids:
        run = post(f"/api/slides/{slide_id}/runs/", {})

        def finished(run_id=run["id"]):
            current = get(f"/api/runs/{run_id}/")
            return current if current["status"] not in {"queued", "running"} else None

        done = stack.wait_for(finished, timeout=300, description=f"run of slide {slide_id}")
        assert done["status"] == "succeeded", done["error"]
        # Finish times one second apart make the queue order unambiguous.
        time.sleep(1)
    return slide_ids


def test_queue_approve_with_keyboard(page, stack, api, queued_slide_ids):
    get, _ = api
    first, second = queued_slide_ids
    queue = get("/api/reviews/queue/")
    assert [entry["slide_id"] for entry in queue["results"]] == [first, second]

    page.goto(f"{stack.base_url}/")
    page.click("nav.topnav a:text('Review')")
    page.wait_for_url(f"{stack.base_url}/review/")
    assert page.locator("#queue-table tbody tr[data-slide-id]").count() == 2
    save_screenshot(page, "review-queue")

    page.click("#queue-start")
    page.wait_for_url(re.compile(rf".*/slides/{first}/\?queue=1.*"))
    page.wait_for_function(FULLY_LOADED, timeout=60_000)
    assert page.locator("#queue-next").is_visible()

    page.locator("body").press("a")
    assert page.locator("#review-note").evaluate("element => element === document.activeElement")
    page.keyboard.type("Checked in queue mode")
    page.keyboard.press("Control+Enter")
    page.wait_for_url(re.compile(rf".*/slides/{second}/\?queue=1.*"), timeout=15_000)
    page.wait_for_function(FULLY_LOADED, timeout=60_000)
    save_screenshot(page, "review-queue-next-slide")

    decisions = get(f"/api/slides/{first}/reviews/")
    assert [d["decision"] for d in decisions] == ["approve"]
    assert decisions[0]["note"] == "Checked in queue mode"
    assert decisions[0]["output_sha256"]
    assert get(f"/api/slides/{first}/")["state"] == "approved"
    assert [e["slide_id"] for e in get("/api/reviews/queue/")["results"]] == [second]
    assert page.console_errors == []


def test_pinned_comment_markers(page, stack, api, queued_slide_ids):
    get, _ = api
    second = queued_slide_ids[1]
    page.wait_for_url(re.compile(rf".*/slides/{second}/.*"))

    page.click("#comment-add")
    assert page.locator("#comment-hint").is_visible()
    box = page.locator("#viewer-original").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.45)
    page.wait_for_selector("#comment-form:not([hidden])")
    assert page.locator("#viewer-restored .comment-marker.pending").count() == 1
    # Typed key by key: the letters a, n, r, s and m must not trigger viewer shortcuts.
    assert page.locator("#comment-text").evaluate("element => element === document.activeElement")
    page.keyboard.type("Pen residue next to the gland, same as run")
    page.click("#comment-save")

    saved = ".comment-marker:not(.pending)"
    page.wait_for_selector(f"#viewer-original {saved}")
    page.wait_for_selector(f"#viewer-restored {saved}")
    assert page.locator(".comment-marker.pending").count() == 0
    assert page.locator(f"#viewer-original {saved}").inner_text() == "1"
    assert page.locator(f"#viewer-restored {saved}").inner_text() == "1"
    assert "Pen residue" in page.locator("#comment-list li").first.inner_text()
    assert page.locator("#sync-state").inner_text() == "on"
    save_screenshot(page, "viewer-comment")

    [comment] = get(f"/api/slides/{second}/comments/")
    slide = get(f"/api/slides/{second}/")
    assert comment["text"] == "Pen residue next to the gland, same as run"
    assert comment["author"] == "pat"
    assert 0 <= comment["x"] < slide["width"]
    assert 0 <= comment["y"] < slide["height"]
    assert comment["run_id"] == slide["latest_succeeded_run_id"]

    # Move both viewers away, then the list item brings both back to the comment.
    page.locator("body").press("s")
    page.locator("body").press("+")
    page.locator("body").press("+")
    page.wait_for_timeout(1000)
    page.click("#comment-list li button")
    page.wait_for_timeout(1500)
    centres = page.evaluate(VIEW_CENTRES)
    for name in ("original", "restored"):
        assert centres[name]["x"] == pytest.approx(comment["x"], abs=2), name
        assert centres[name]["y"] == pytest.approx(comment["y"], abs=2), name
    page.locator("body").press("s")

    # The marker survives a reload: it comes from the stored comment.
    page.reload()
    page.wait_for_selector("#viewer-restored .comment-marker")
    assert page.locator("#viewer-original .comment-marker").count() == 1
    assert page.console_errors == []


def test_next_key_ends_queue(page, stack, queued_slide_ids):
    # The current slide is the only one waiting, so "n" finds no other slide.
    page.wait_for_function(FULLY_LOADED, timeout=60_000)
    page.locator("body").press("n")
    page.wait_for_url(f"{stack.base_url}/review/?done=1")
    assert "No other slide is waiting" in page.locator(".queue-done").inner_text()


def test_audit_page_lists_actions(page, stack, queued_slide_ids):
    page.goto(f"{stack.base_url}/audit/")
    actions = page.locator("#audit-table tbody tr").evaluate_all(
        "rows => rows.map(row => row.dataset.action)"
    )
    for action in ("slide.import", "run.create", "run.finish", "review.decision", "comment.create"):
        assert action in actions, action

    page.select_option("#filter-action", "comment.create")
    page.click("#audit-filters button[type=submit]")
    page.wait_for_url(re.compile(r".*/audit/\?.*action=comment.create.*"))
    assert page.locator("#audit-table tbody tr").count() == 1
    export = page.locator("#audit-export").get_attribute("href")
    assert export.startswith("/api/audit/export.csv?") and "action=comment.create" in export
    save_screenshot(page, "audit-log")

    response = page.request.get(f"{stack.base_url}{export}")
    assert response.ok
    assert response.headers["content-type"] == "text/csv"
    lines = response.text().strip().splitlines()
    assert lines[0].startswith("id,created_at,actor,action")
    assert len(lines) == 2
    assert ",comment.create," in lines[1]
