"""Reads of datasets, their drafts, versions and exports."""

from __future__ import annotations

from django.db.models import Count, Max, Prefetch, QuerySet

from inkweb.core.exceptions import NotFoundError
from inkweb.datasets.models import (
    Dataset,
    DatasetExport,
    DatasetMember,
    DatasetVersion,
    DatasetVersionMember,
)
from inkweb.slides.models import Slide
from inkweb.slides.selectors import slide_queryset_annotated
from inkweb.slides.states import SlideState


def dataset_list() -> QuerySet[Dataset]:
    """Return every dataset with its draft size and newest version number, by name."""
    return (
        Dataset.objects.select_related("created_by")
        .annotate(
            member_count=Count("members", distinct=True),
            latest_version=Max("versions__number"),
        )
        .order_by("name", "id")
    )


def dataset_get(*, dataset_id: int) -> Dataset:
    """Return one dataset with its counts, or raise NotFoundError."""
    dataset = dataset_list().filter(pk=dataset_id).first()
    if dataset is None:
        raise NotFoundError(f"Dataset {dataset_id} does not exist.", code="dataset_not_found")
    return dataset


def dataset_draft_slides(*, dataset_id: int) -> list[Slide]:
    """Return the draft's slides in the order they were added, each with its review state.

    Each slide carries `state` (SlideState) and `added_at`; one query for the slides.
    """
    members = {
        member.slide_id: member
        for member in DatasetMember.objects.filter(dataset_id=dataset_id).select_related("added_by")
    }
    slides = list(slide_queryset_annotated().filter(pk__in=list(members)))
    for slide in slides:
        slide.added_at = members[slide.pk].added_at
        slide.added_by_name = (
            members[slide.pk].added_by.get_username() if members[slide.pk].added_by else ""
        )
    return sorted(slides, key=lambda slide: (slide.added_at, slide.pk))


def dataset_addable_slides(*, dataset_id: int) -> QuerySet[Slide]:
    """Return approved slides that are not in the draft yet, by name."""
    members = DatasetMember.objects.filter(dataset_id=dataset_id).values("slide_id")
    return (
        slide_queryset_annotated()
        .filter(state=SlideState.APPROVED)
        .exclude(pk__in=members)
        .order_by("name", "id")
    )


def dataset_versions(*, dataset_id: int) -> QuerySet[DatasetVersion]:
    """Return a dataset's versions, newest first, with their export and member count."""
    return (
        DatasetVersion.objects.filter(dataset_id=dataset_id)
        .select_related("created_by", "export", "export__requested_by")
        .annotate(member_count=Count("members"))
        .order_by("-number")
    )


def version_members(*, version_id: int) -> QuerySet[DatasetVersionMember]:
    """Return the frozen members of a version in identifier order."""
    return (
        DatasetVersionMember.objects.filter(version_id=version_id)
        .select_related("slide", "review__reviewer")
        .order_by("position")
    )


def export_list(*, dataset_id: int) -> QuerySet[DatasetExport]:
    """Return a dataset's exports, newest first."""
    return (
        DatasetExport.objects.filter(dataset_id=dataset_id)
        .select_related("dataset", "version", "requested_by")
        .defer("manifest")
        .order_by("-created_at", "-id")
    )


def export_get(*, export_id: int) -> DatasetExport:
    """Return one export with its dataset, version and frozen members, or raise NotFoundError."""
    export = (
        DatasetExport.objects.select_related("dataset", "version", "requested_by")
        .prefetch_related(
            Prefetch(
                "version__members",
                queryset=DatasetVersionMember.objects.order_by("position"),
            )
        )
        .filter(pk=export_id)
        .first()
    )
    if export is None:
        raise NotFoundError(f"Export {export_id} does not exist.", code="export_not_found")
    return export
