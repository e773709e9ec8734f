"""Page views: they read through selectors and render templates, nothing more."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from inkweb.core.exceptions import NotFoundError
from inkweb.reviews.selectors import review_list
from inkweb.runs.models import PipelineRun
from inkweb.runs.reports import run_report_summary
from inkweb.runs.selectors import run_latest_succeeded, run_lineage, run_list
from inkweb.slides.selectors import SLIDE_ORDERINGS, slide_get, slide_list, slide_state_counts
from inkweb.slides.states import SlideState
from pipeline.options import RESTORE_METHOD_LABELS, RESTORE_METHODS, RunOptions

# Column headers of the list that can sort, with the key they sort by.
SORTABLE_COLUMNS = {
    "name": "name",
    "format": "format",
    "size": "width",
    "mpp": "mpp",
    "ink": "ink",
    "state": "state",
    "created": "created",
}


def slide_list_page(request: HttpRequest) -> HttpResponse:
    """Render the slide list, filtered by ?state= and ?q=, sorted by ?sort=."""
    state = request.GET.get("state") or None
    if state not in SlideState.values:
        state = None
    sort = request.GET.get("sort") or "-created"
    if sort.removeprefix("-") not in SLIDE_ORDERINGS:
        sort = "-created"
    search = (request.GET.get("q") or "").strip()[:200]

    # NOTE: the page lists the first 500 matches only; the API pages through all of them.
    slides = list(slide_list(state=state, ordering=sort, search=search or None)[:500])
    for slide in slides:
        slide.state_label = SlideState(slide.state).label
    counts = slide_state_counts()
    tabs = [{"value": "", "label": "All", "count": sum(counts.values())}]
    tabs += [
        {"value": value, "label": label, "count": counts[value]}
        for value, label in SlideState.choices
    ]

    columns = {}
    for column, key in SORTABLE_COLUMNS.items():
        active = sort.removeprefix("-") == key
        descending = sort.startswith("-")
        indicator = ""
        if active:
            indicator = "▼" if descending else "▲"
        columns[column] = {
            "sort": f"-{key}" if active and not descending else key,
            "indicator": indicator,
        }

    return render(
        request,
        "pages/slide_list.html",
        {
            "slides": slides,
            "tabs": tabs,
            "state": state or "",
            "sort": sort,
            "search": search,
            "columns": columns,
            "list_config": {
                "slidesApi": reverse("api-slide-list"),
                "stateLabels": dict(SlideState.choices),
                "maxUploadBytes": settings.INKWEB_MAX_UPLOAD_BYTES,
            },
        },
    )


def slide_detail_page(request: HttpRequest, slide_id: int) -> HttpResponse:
    """Render the viewer of one slide; ?run= picks the run shown on the right."""
    try:
        slide = slide_get(slide_id=slide_id)
    except NotFoundError as error:
        raise Http404(str(error)) from error

    runs = list(run_list(slide_id=slide.pk)[:50])
    viewed_run = None
    requested_run = request.GET.get("run", "")
    if requested_run.isdigit():
        viewed_run = next(
            (
                run
                for run in runs
                if run.pk == int(requested_run) and run.status == PipelineRun.Status.SUCCEEDED
            ),
            None,
        )
    if viewed_run is None:
        viewed_run = run_latest_succeeded(slide_id=slide.pk)
    latest_run = runs[0] if runs else None
    reviews = list(review_list(slide_id=slide.pk))
    # Decisions and corrections apply only to the newest succeeded run; an older one is
    # shown read-only.
    viewed_is_latest = viewed_run is not None and viewed_run.pk == slide.latest_succeeded_run_id

    viewer_config = {
        "slideId": slide.pk,
        "name": slide.name,
        "width": slide.width,
        "height": slide.height,
        "mppX": slide.mpp_x,
        "mppY": slide.mpp_y,
        "ready": slide.ingest_status == "ready",
        "viewedRunId": viewed_run.pk if viewed_run else None,
        "stateLabels": dict(SlideState.choices),
        "latestRun": (
            {
                "id": latest_run.pk,
                "status": latest_run.status,
                "progress": latest_run.progress,
                "stage": latest_run.stage,
                "message": latest_run.message,
                "error": latest_run.error,
            }
            if latest_run
            else None
        ),
        "urls": {
            "originalInfo": reverse(
                "api-tile-info", kwargs={"slide_id": slide.pk, "kind": "original"}
            ),
            "restoredInfo": reverse(
                "api-tile-info", kwargs={"slide_id": slide.pk, "kind": "restored"}
            ),
            "maskInfo": reverse("api-tile-info", kwargs={"slide_id": slide.pk, "kind": "mask"}),
            "runs": reverse("api-slide-runs", kwargs={"slide_id": slide.pk}),
            "runDetail": reverse("api-run-detail", kwargs={"run_id": 0}),
            "reviews": reverse("api-slide-reviews", kwargs={"slide_id": slide.pk}),
            "slide": reverse("api-slide-detail", kwargs={"slide_id": slide.pk}),
            "osdImages": settings.STATIC_URL + "vendor/openseadragon/images/",
        },
    }
    # Region corrections: the viewed run's lineage and what corrections.js needs.
    lineage = run_lineage(run=viewed_run) if viewed_run else []
    viewer_config["corrections"] = {
        "revisionsUrl": reverse("api-run-revisions", kwargs={"run_id": 0}),
        "restoreMethods": [
            {"value": method, "label": RESTORE_METHOD_LABELS[method]} for method in RESTORE_METHODS
        ],
        "lineage": [
            {"id": run.pk, "kind": run.kind, "corrections": run.corrections} for run in lineage
        ],
    }

    return render(
        request,
        "pages/slide_detail.html",
        {
            "slide": slide,
            "lineage": lineage,
            "runs": runs,
            "latest_run": latest_run,
            "viewed_run": viewed_run,
            "viewed_is_latest": viewed_is_latest,
            "report": run_report_summary(viewed_run.report) if viewed_run else None,
            "restore_methods": [(method, RESTORE_METHOD_LABELS[method])
                                for method in RESTORE_METHODS],
            "default_restore_method": RunOptions().restore_method,
            "reviews": reviews,
            "viewer_config": viewer_config,
            "state_label": SlideState(slide.state).label,
        },
    )
