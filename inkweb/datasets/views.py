"""Dataset pages: they read through selectors and render templates, nothing more."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from inkweb.core.exceptions import NotFoundError
from inkweb.datasets.models import DatasetExport
from inkweb.datasets.selectors import (
    dataset_addable_slides,
    dataset_draft_slides,
    dataset_get,
    dataset_list,
    dataset_versions,
)
from inkweb.slides.states import SlideState


def dataset_list_page(request: HttpRequest) -> HttpResponse:
    """Render the list of datasets with a form to create one."""
    return render(
        request,
        "pages/dataset_list.html",
        {
            "datasets": dataset_list(),
            "datasets_config": {"datasetsApi": reverse("api-dataset-list")},
        },
    )


def dataset_detail_page(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Render one dataset: its draft, the add and export controls, and its versions."""
    try:
        dataset = dataset_get(dataset_id=dataset_id)
    except NotFoundError as error:
        raise Http404(str(error)) from error

    slides = dataset_draft_slides(dataset_id=dataset.pk)
    for slide in slides:
        slide.state_label = SlideState(slide.state).label
    versions = list(dataset_versions(dataset_id=dataset.pk))
    active = next((version.export for version in versions if version.export.is_active), None)
    config = {
        "datasetId": dataset.pk,
        "activeExport": _export_state(active) if active else None,
        "urls": {
            "slides": reverse("api-dataset-slides", kwargs={"dataset_id": dataset.pk}),
            "slide": reverse("api-dataset-slide", kwargs={"dataset_id": dataset.pk, "slide_id": 0}),
            "exports": reverse("api-dataset-exports", kwargs={"dataset_id": dataset.pk}),
            "exportDetail": reverse("api-export-detail", kwargs={"export_id": 0}),
            "exportCancel": reverse("api-export-cancel", kwargs={"export_id": 0}),
        },
    }
    return render(
        request,
        "pages/dataset_detail.html",
        {
            "dataset": dataset,
            "slides": slides,
            "addable_slides": dataset_addable_slides(dataset_id=dataset.pk),
            "versions": versions,
            "active_export": active,
            "approved_state": SlideState.APPROVED,
            "dataset_config": config,
        },
    )


def _export_state(export: DatasetExport) -> dict:
    return {
        "id": export.pk,
        "status": export.status,
        "progress": export.progress,
        "stage": export.stage,
        "message": export.message,
        "error": export.error,
    }
