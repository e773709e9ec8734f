"""API and pages: authentication, roles, CSRF, the error format, list queries, schema."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.exceptions import ValidationError
from rest_framework.test import APIClient

from inkweb.core.exceptions import api_exception_handler
from inkweb.reviews.services import review_record
from inkweb.runs.models import PipelineRun
from inkweb.slides.models import Slide
from pipeline.errors import SlideReadError, UnsupportedSlideError
from tests.web.conftest import client_for

API_URLS = [
    "/api/slides/",
    "/api/slides/1/",
    "/api/slides/1/thumbnail",
    "/api/slides/1/reviews/",
    "/api/slides/1/tiles/original/info",
    "/api/slides/1/tiles/original/0/0/0.jpeg",
    "/api/runs/",
    "/api/runs/1/",
    "/api/schema/?format=json",
]


@pytest.mark.django_db
def test_api_rejects_anonymous():
    client = APIClient()
    for url in API_URLS:
        response = client.get(url)
        assert response.status_code == 403, url
        assert response.json()["code"] == "not_authenticated", url
    for url in ["/api/slides/", "/api/slides/1/runs/", "/api/runs/1/cancel/"]:
        assert client.post(url).status_code == 403, url


@pytest.mark.django_db
def test_pages_redirect_anonymous_to_login():
    client = Client()
    for url in ["/", "/slides/1/", "/api/docs/"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/"), url
    assert client.get("/accounts/login/").status_code == 200


@pytest.mark.django_db
def test_pages_render_for_signed_in_user(succeeded_run, reviewer):
    client = Client()
    client.force_login(reviewer)
    listing = client.get("/")
    assert listing.status_code == 200
    assert succeeded_run.slide.name in listing.content.decode()
    viewer = client.get(f"/slides/{succeeded_run.slide_id}/")
    assert viewer.status_code == 200
    page = viewer.content.decode()
    assert "viewer-original" in page
    assert "viewer-restored" in page
    assert "review-form" in page
    assert client.get("/?state=to_review&sort=-name").status_code == 200
    assert client.get("/slides/999999/").status_code == 404
    assert client.get("/api/docs/").status_code == 200


@pytest.mark.django_db
def test_login_with_password(uploader):
    client = Client()
    response = client.post(
        "/accounts/login/", {"username": "uma", "password": "uma-password-1"}, follow=False
    )
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


@pytest.mark.django_db
def test_roles_enforced(ready_slide, reviewer, green_pen_path):
    client = client_for(reviewer)
    with open(green_pen_path, "rb") as handle:
        upload = client.post("/api/slides/", {"file": handle}, format="multipart")
    assert upload.status_code == 403
    assert upload.json()["code"] == "permission_denied"
    start = client.post(f"/api/slides/{ready_slide.pk}/runs/", {}, format="json")
    assert start.status_code == 403


@pytest.mark.django_db
def test_csrf_required_for_session_posts(ready_slide, uploader):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(uploader)
    response = client.post(f"/api/slides/{ready_slide.pk}/runs/", {}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert PipelineRun.objects.count() == 0


@pytest.mark.django_db
def test_unknown_objects_404_json(uploader):
    client = client_for(uploader)
    for url in ["/api/slides/424242/", "/api/runs/424242/", "/api/slides/424242/reviews/"]:
        response = client.get(url)
        assert response.status_code == 404, url
        assert set(response.json()) == {"detail", "code"}, url


@pytest.mark.django_db
def test_list_filters_and_validation(succeeded_run, uploader, shared_data):
    from inkweb.slides.services import slide_import

    slide_import(path=shared_data / "slides" / "boxes.tiff", imported_by=uploader)
    client = client_for(uploader)

    to_review = client.get("/api/slides/?state=to_review").json()
    assert [slide["id"] for slide in to_review["results"]] == [succeeded_run.slide_id]
    fresh = client.get("/api/slides/?state=new").json()
    assert [slide["name"] for slide in fresh["results"]] == ["boxes"]
    by_name = client.get("/api/slides/?ordering=name").json()
    assert [slide["name"] for slide in by_name["results"]] == ["boxes", "tcga-green-pen"]
    searched = client.get("/api/slides/?q=green").json()
    assert searched["count"] == 1

    invalid = client.get("/api/slides/?state=sparkling")
    assert invalid.status_code == 400
    assert "state" in invalid.json()["fields"]


def _make_slides(count: int, *, start: int, user, reviewer) -> None:
    for index in range(start, start + count):
        slide = Slide.objects.create(
            name=f"slide {index}",
            original_filename=f"slide-{index}.svs",
            original_path=f"originals/{index}/slide.svs",
            file_size_bytes=100,
            sha256=f"{index:064x}",
            width=1000,
            height=800,
            ingest_status=Slide.IngestStatus.READY,
            uploaded_by=user,
        )
        run = PipelineRun.objects.create(
            slide=slide, requested_by=user, status=PipelineRun.Status.SUCCEEDED, ink_found=True
        )
        PipelineRun.objects.create(slide=slide, requested_by=user, status=PipelineRun.Status.FAILED)
        review_record(slide=slide, reviewer=reviewer, decision="approve", run=run)


@pytest.mark.django_db
def test_slide_list_query_count_constant(uploader, reviewer, django_assert_num_queries):
    client = APIClient()
    client.force_authenticate(uploader)

    _make_slides(3, start=1, user=uploader, reviewer=reviewer)
    # One COUNT for the pagination and one SELECT with the run and review subqueries.
    with django_assert_num_queries(2):
        small = client.get("/api/slides/")
    assert small.json()["count"] == 3

    _make_slides(9, start=10, user=uploader, reviewer=reviewer)
    with django_assert_num_queries(2):
        large = client.get("/api/slides/")
    body = large.json()
    assert body["count"] == 12
    first = body["results"][0]
    assert first["latest_run"]["status"] == "failed"
    assert first["latest_review"]["decision"] == "approve"
    assert first["ink_found"] is True
    # A failed rerun does not undo the approval of the newest succeeded output.
    assert first["state"] == "approved"


@pytest.mark.django_db
def test_schema_lists_endpoints(uploader):
    schema = client_for(uploader).get("/api/schema/?format=json").json()
    paths = schema["paths"]
    assert "/api/slides/{slide_id}/tiles/{kind}/{z}/{x}/{y}.{fmt}" in paths
    assert "/api/slides/{slide_id}/reviews/" in paths
    assert "/api/runs/{run_id}/cancel/" in paths


class _View:
    pass


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (SlideReadError("/tmp/x.svs", "not a TIFF file"), 400, "slide_unreadable"),
        (UnsupportedSlideError("/tmp/x.tif", "16-bit"), 400, "slide_unsupported"),
        (RuntimeError("surprise"), 500, "server_error"),
    ],
)
def test_exception_handler_maps_errors(error, status, code):
    response = api_exception_handler(error, {"view": _View()})
    assert response.status_code == status
    assert response.data["code"] == code
    assert response.data["detail"]


@pytest.mark.django_db
def test_unknown_api_route_is_json_404(uploader):
    response = client_for(uploader).get("/api/no-such-endpoint/")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        ({"name": ["Required."]}, "name: Required."),
        (["Bad pair."], "Bad pair."),
        ({"items": {0: {"width": ["Too small."]}}}, "items[0].width: Too small."),
        ({"items": [{}, {"x": ["Not a number."]}]}, "items[1].x: Not a number."),
        ({"box": {"non_field_errors": ["Empty box."]}}, "box: Empty box."),
        (
            {"a": ["One."], "b": {"c": ["Two.", "Three."]}},
            "a: One. b.c: Two. b.c: Three.",
        ),
    ],
)
def test_validation_detail_paths(detail, expected):
    response = api_exception_handler(ValidationError(detail), {})
    assert response.status_code == 400
    assert response.data["detail"] == expected
    assert response.data["code"] == "invalid"
