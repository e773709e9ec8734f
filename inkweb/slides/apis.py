"""Slide API: list with filters, upload, detail, delete, thumbnail."""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response

from inkweb.accounts.permissions import IsUploader
from inkweb.core.api import ApiView, FirstRendererNegotiation
from inkweb.core.exceptions import NotFoundError
from inkweb.core.pagination import paginated_response
from inkweb.core.storage import storage_absolute
from inkweb.slides.models import Slide
from inkweb.slides.selectors import SLIDE_ORDERINGS, slide_get, slide_list
from inkweb.slides.services import slide_delete, slide_upload
from inkweb.slides.states import SlideState

ORDERING_CHOICES = [*SLIDE_ORDERINGS, *(f"-{key}" for key in SLIDE_ORDERINGS)]


class LatestRunSerializer(serializers.Serializer):
    """The newest run of a slide, whatever its status."""

    id = serializers.IntegerField()
    status = serializers.CharField()
    progress = serializers.FloatField()
    stage = serializers.CharField()
    message = serializers.CharField()
    error = serializers.CharField()


class LatestReviewSerializer(serializers.Serializer):
    """The newest review decision of a slide."""

    decision = serializers.CharField()
    run_id = serializers.IntegerField()
    reviewer = serializers.CharField()
    created_at = serializers.DateTimeField()


class SlideOutputSerializer(serializers.ModelSerializer):
    """A slide with its stored metadata, latest run, latest review and combined state."""

    uploaded_by = serializers.CharField(source="uploaded_by.username", default=None)
    state = serializers.ChoiceField(choices=SlideState.choices)
    latest_run = serializers.SerializerMethodField()
    latest_succeeded_run_id = serializers.IntegerField(allow_null=True)
    ink_found = serializers.BooleanField(source="latest_ink_found", allow_null=True)
    latest_review = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()
    viewer_url = serializers.SerializerMethodField()

    class Meta:
        """Every field is read-only."""

        model = Slide
        fields = [
            "id",
            "name",
            "original_filename",
            "format",
            "reader",
            "width",
            "height",
            "level_count",
            "mpp_x",
            "mpp_y",
            "associated_images",
            "file_size_bytes",
            "sha256",
            "ingest_status",
            "ingest_error",
            "uploaded_by",
            "created_at",
            "state",
            "latest_run",
            "latest_succeeded_run_id",
            "ink_found",
            "latest_review",
            "thumbnail_url",
            "viewer_url",
        ]
        read_only_fields = fields

    @extend_schema_field(LatestRunSerializer(allow_null=True))
    def get_latest_run(self, slide: Slide) -> dict | None:  # noqa: D102
        if slide.latest_run_id is None:
            return None
        return {
            "id": slide.latest_run_id,
            "status": slide.latest_run_status,
            "progress": slide.latest_run_progress,
            "stage": slide.latest_run_stage,
            "message": slide.latest_run_message,
            "error": slide.latest_run_error,
        }

    @extend_schema_field(LatestReviewSerializer(allow_null=True))
    def get_latest_review(self, slide: Slide) -> dict | None:  # noqa: D102
        if slide.latest_review_decision is None:
            return None
        return {
            "decision": slide.latest_review_decision,
            "run_id": slide.latest_review_run_id,
            "reviewer": slide.latest_reviewer_username,
            "created_at": slide.latest_review_at,
        }

    @extend_schema_field(OpenApiTypes.STR)
    def get_thumbnail_url(self, slide: Slide) -> str | None:  # noqa: D102
        if not slide.thumbnail_path:
            return None
        return reverse("api-slide-thumbnail", kwargs={"slide_id": slide.pk})

    @extend_schema_field(OpenApiTypes.STR)
    def get_viewer_url(self, slide: Slide) -> str:  # noqa: D102
        return reverse("slide-detail", kwargs={"slide_id": slide.pk})


class SlideListApi(ApiView):
    """GET lists slides; POST uploads one (multipart, field "file")."""

    class FilterSerializer(serializers.Serializer):
        """Query parameters of the slide list."""

        state = serializers.ChoiceField(choices=SlideState.choices, required=False)
        ordering = serializers.ChoiceField(choices=ORDERING_CHOICES, default="-created")
        q = serializers.CharField(required=False, max_length=200)
        ids = serializers.RegexField(r"^\d+(,\d+)*$", required=False, help_text="e.g. 1,2,3")

    @extend_schema_serializer(component_name="SlideUpload")
    class InputSerializer(serializers.Serializer):
        """The slide file and an optional display name."""

        file = serializers.FileField(allow_empty_file=False, use_url=False)
        name = serializers.CharField(required=False, allow_blank=True, max_length=255)

    def get_permissions(self):  # noqa: D102
        if self.request.method == "POST":
            return [permission() for permission in (*self.permission_classes, IsUploader)]
        return super().get_permissions()

    @extend_schema(
        parameters=[FilterSerializer],
        responses=SlideOutputSerializer(many=True),
        summary="List slides",
    )
    def get(self, request):  # noqa: D102
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        params = filters.validated_data
        ids = [int(i) for i in params["ids"].split(",")] if params.get("ids") else None
        slides = slide_list(
            state=params.get("state"), ordering=params["ordering"], search=params.get("q"), ids=ids
        )
        return paginated_response(
            queryset=slides, serializer_class=SlideOutputSerializer, request=request, view=self
        )

    @extend_schema(
        request={"multipart/form-data": InputSerializer},
        responses={201: SlideOutputSerializer},
        summary="Upload a slide",
        description=(
            "The file is validated by content with the pipeline reader; an unreadable file is "
            "answered with 400 and nothing is stored. Ingest (metadata, thumbnail) then runs "
            "on the ingest queue; the slide's ingest_status says when it is ready."
        ),
    )
    def post(self, request):  # noqa: D102
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        slide = slide_upload(
            uploaded_file=payload.validated_data["file"],
            name=payload.validated_data.get("name", ""),
            uploaded_by=request.user,
        )
        output = SlideOutputSerializer(slide_get(slide_id=slide.pk), context={"request": request})
        return Response(output.data, status=status.HTTP_201_CREATED)


class SlideDetailApi(ApiView):
    """GET one slide; DELETE it when it has no review decisions."""

    @extend_schema(responses=SlideOutputSerializer, summary="Get a slide")
    def get(self, request, slide_id: int):  # noqa: D102
        slide = slide_get(slide_id=slide_id)
        return Response(SlideOutputSerializer(slide, context={"request": request}).data)

    @extend_schema(responses={204: None}, summary="Delete a slide and its files")
    def delete(self, request, slide_id: int):  # noqa: D102
        slide = slide_get(slide_id=slide_id)
        slide_delete(slide=slide, deleted_by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SlideThumbnailApi(ApiView):
    """GET the PNG thumbnail written at ingest."""

    content_negotiation_class = FirstRendererNegotiation

    @extend_schema(
        responses={(200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY)},
        summary="Get a slide thumbnail",
    )
    def get(self, request, slide_id: int):  # noqa: D102
        slide = slide_get(slide_id=slide_id)
        if not slide.thumbnail_path:
            raise NotFoundError(f"Slide {slide_id} has no thumbnail yet.", code="no_thumbnail")
        path = storage_absolute(slide.thumbnail_path)
        if not path.is_file():
            raise NotFoundError(
                f"The thumbnail of slide {slide_id} is missing.", code="no_thumbnail"
            )
        # Thumbnails are small; a plain response avoids a sync file iterator under ASGI.
        response = HttpResponse(path.read_bytes(), content_type="image/png")
        response["Cache-Control"] = "private, max-age=300"
        return response
