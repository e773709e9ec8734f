"""Comments pinned to a slide point: validation, roles, ordering and the API."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from inkweb.core.exceptions import ApplicationError, ConflictError, ForbiddenError
from inkweb.reviews.models import SlideComment
from inkweb.reviews.services import comment_create
from inkweb.runs.models import PipelineRun
from inkweb.slides.models import Slide
from tests.web.conftest import client_for


@pytest.mark.django_db
def test_comment_stored_with_point(succeeded_run, reviewer):
    slide = succeeded_run.slide
    comment = comment_create(
        slide=slide, author=reviewer, x=120.5, y=33.0, text="  residue here  ", run=succeeded_run
    )
    stored = SlideComment.objects.get(pk=comment.pk)
    assert (stored.x, stored.y) == (120.5, 33.0)
    assert stored.text == "residue here"
    assert stored.run_id == succeeded_run.pk
    assert stored.author_id == reviewer.pk


@pytest.mark.parametrize(
    ("x", "y"),
    [(-1, 10), (10, -0.5), ("width", 10), (10, "height"), (float("nan"), 10), (10, float("inf"))],
)
@pytest.mark.django_db
def test_out_of_bounds_rejected(ready_slide, reviewer, x, y):
    x = ready_slide.width if x == "width" else x
    y = ready_slide.height if y == "height" else y
    with pytest.raises(ApplicationError) as error:
        comment_create(slide=ready_slide, author=reviewer, x=x, y=y, text="edge")
    assert error.value.code == "comment_out_of_bounds"
    assert f"{ready_slide.width} x {ready_slide.height}" in error.value.detail
    assert not SlideComment.objects.exists()


@pytest.mark.django_db
def test_last_pixel_accepted(ready_slide, reviewer):
    comment = comment_create(
        slide=ready_slide,
        author=reviewer,
        x=ready_slide.width - 0.5,
        y=ready_slide.height - 1,
        text="corner",
    )
    assert comment.pk is not None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("   ", "empty"), ("x" * 2001, "maximum is 2000")],
)
@pytest.mark.django_db
def test_comment_text_checked(ready_slide, reviewer, text, fragment):
    with pytest.raises(ApplicationError, match=fragment):
        comment_create(slide=ready_slide, author=reviewer, x=1, y=1, text=text)


@pytest.mark.django_db
def test_comment_run_of_other_slide(succeeded_run, reviewer, uploader, shared_data):
    from inkweb.slides.services import slide_import

    other = slide_import(path=shared_data / "slides" / "boxes.tiff", imported_by=uploader)
    with pytest.raises(ApplicationError) as error:
        comment_create(slide=other, author=reviewer, x=1, y=1, text="x", run=succeeded_run)
    assert error.value.code == "run_of_other_slide"


@pytest.mark.django_db
def test_comment_needs_role(ready_slide, db):
    nobody = get_user_model().objects.create_user(username="nobody", password="nobody-pass-1")
    with pytest.raises(ForbiddenError):
        comment_create(slide=ready_slide, author=nobody, x=1, y=1, text="hello")


@pytest.mark.django_db
def test_comment_needs_known_size(ready_slide, uploader):
    Slide.objects.filter(pk=ready_slide.pk).update(width=None, height=None)
    ready_slide.refresh_from_db()
    with pytest.raises(ConflictError) as error:
        comment_create(slide=ready_slide, author=uploader, x=1, y=1, text="hello")
    assert error.value.code == "slide_not_ready"


@pytest.mark.django_db
def test_comment_api_round_trip(succeeded_run, reviewer, uploader):
    url = f"/api/slides/{succeeded_run.slide_id}/comments/"
    first = client_for(reviewer).post(
        url, {"x": 100, "y": 50, "text": "check this", "run": succeeded_run.pk}, format="json"
    )
    assert first.status_code == 201, first.content
    second = client_for(uploader).post(url, {"x": 10, "y": 20, "text": "and here"}, format="json")
    assert second.status_code == 201, second.content

    listed = client_for(reviewer).get(url).json()
    assert [c["text"] for c in listed] == ["check this", "and here"]
    assert listed[0] == {
        "id": first.json()["id"],
        "slide_id": succeeded_run.slide_id,
        "run_id": succeeded_run.pk,
        "author": "rita",
        "x": 100.0,
        "y": 50.0,
        "text": "check this",
        "created_at": listed[0]["created_at"],
    }
    assert listed[1]["run_id"] is None


@pytest.mark.django_db
def test_comment_api_errors(succeeded_run, reviewer):
    client = client_for(reviewer)
    url = f"/api/slides/{succeeded_run.slide_id}/comments/"

    outside = client.post(url, {"x": 100000, "y": 5, "text": "far"}, format="json")
    assert outside.status_code == 400
    assert outside.json()["code"] == "comment_out_of_bounds"

    missing = client.post(url, {"x": 5, "text": "no y"}, format="json")
    assert missing.status_code == 400
    assert "y" in missing.json()["fields"]

    unknown_run = client.post(url, {"x": 5, "y": 5, "text": "t", "run": 9999}, format="json")
    assert unknown_run.status_code == 404
    assert unknown_run.json()["code"] == "run_not_found"

    no_slide = client.get("/api/slides/9999/comments/")
    assert no_slide.status_code == 404
    assert PipelineRun.objects.count() == 1
    assert not SlideComment.objects.exists()
