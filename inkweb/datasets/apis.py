"""Dataset API: datasets and their drafts, versioned exports, progress, cancel and downloads."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from inkweb.accounts.permissions import IsReviewer
from inkweb.core.api import ApiView, FirstRendererNegotiation
from inkweb.datasets.downloads import export_manifest_response, export_zip_response
from inkweb.datasets.models import Dataset, DatasetExport
from inkweb.datasets.selectors import (
    dataset_draft_slides,
    dataset_get,
    dataset_list,
    dataset_versions,
    export_get,
    export_list,
)
from inkweb.datasets.services import (
    dataset_create,
    dataset_export,
    dataset_slide_add,
    dataset_slide_remove,
    export_cancel,
)
from inkweb.slides.selectors import slide_get
from inkweb.slides.states import SlideState


class ExportOutputSerializer(serializers.ModelSerializer):
    """An export with its progress and download links."""

    dataset_id = serializers.IntegerField()
    version = serializers.IntegerField(source="version.number")
    requested_by = serializers.CharField(source="requested_by.username", default=None)
    urls = serializers.SerializerMethodField()

    class Meta:
        """Every field is read-only."""

        model = DatasetExport
        fields = [
            "id",
            "dataset_id",
            "version",
            "target",
            "status",
            "progress",
            "stage",
            "message",
            "error",
            "output_dir",
            "total_bytes",
            "object_store_names",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
            "urls",
        ]
        read_only_fields = fields

    def get_urls(self, export: DatasetExport) -> dict[str, str]:
        """Return the export's status, cancel, zip and manifest URLs."""
        key = {"export_id": export.pk}
        return {
            "detail": reverse("api-export-detail", kwargs=key),
            "cancel": reverse("api-export-cancel", kwargs=key),
            "download": reverse("api-export-download", kwargs=key),
            "manifest_json": reverse("api-export-manifest-json", kwargs=key),
            "manifest_csv": reverse("api-export-manifest-csv", kwargs=key),
        }


class VersionMemberSerializer(serializers.Serializer):
    """One frozen member of an exported version."""

    identifier = serializers.CharField()
    slide_id = serializers.IntegerField()
    run_id = serializers.IntegerField()
    review_id = serializers.IntegerField()
    restored_sha256 = serializers.CharField()


class ExportDetailOutputSerializer(ExportOutputSerializer):
    """An export with its frozen members and manifest."""

    members = VersionMemberSerializer(source="version.members.all", many=True)

    class Meta(ExportOutputSerializer.Meta):
        """The list fields plus members and manifest."""

        fields = [*ExportOutputSerializer.Meta.fields, "members", "manifest"]
        read_only_fields = fields


class DatasetOutputSerializer(serializers.ModelSerializer):
    """A dataset with its draft size and newest version number."""

    created_by = serializers.CharField(source="created_by.username", default=None)
    member_count = serializers.IntegerField()
    latest_version = serializers.IntegerField(allow_null=True)

    class Meta:
        """Every field is read-only."""

        model = Dataset
        fields = [
            "id",
            "name",
            "slug",
            "description",
            "created_by",
            "created_at",
            "updated_at",
            "member_count",
            "latest_version",
        ]
        read_only_fields = fields


class DraftSlideSerializer(serializers.Serializer):
    """A slide in a dataset's draft and its current review state."""

    slide_id = serializers.IntegerField(source="pk")
    name = serializers.CharField()
    state = serializers.CharField()
    approved_run_id = serializers.SerializerMethodField()
    added_at = serializers.DateTimeField()
    added_by = serializers.CharField(source="added_by_name")

    def get_approved_run_id(self, slide) -> int | None:
        """Return the run the slide's approval names, or None while it is not approved."""
        return slide.latest_review_run_id if slide.state == SlideState.APPROVED else None


class VersionSerializer(serializers.Serializer):
    """A frozen version and its export."""

    number = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(source="created_by.username")
    member_count = serializers.IntegerField()
    export = ExportOutputSerializer()


class ReviewerOnlyForWrites(ApiView):
    """Base of dataset APIs whose POST and DELETE need the reviewer role."""

    def get_permissions(self):  # noqa: D102
        if self.request.method in ("POST", "DELETE"):
            return [permission() for permission in (*self.permission_classes, IsReviewer)]
        return super().get_permissions()


def _dataset_detail(dataset_id: int) -> dict:
    dataset = dataset_get(dataset_id=dataset_id)
    data = DatasetOutputSerializer(dataset).data
    data["members"] = DraftSlideSerializer(
        dataset_draft_slides(dataset_id=dataset.pk), many=True
    ).data
    data["versions"] = VersionSerializer(dataset_versions(dataset_id=dataset.pk), many=True).data
    return data


class DatasetListApi(ReviewerOnlyForWrites):
    """GET lists datasets; POST creates one (reviewer role)."""

    @extend_schema_serializer(component_name="DatasetCreate")
    class InputSerializer(serializers.Serializer):
        """Name and optional description of a new dataset."""

        name = serializers.CharField(max_length=100)
        description = serializers.CharField(
            required=False, allow_blank=True, max_length=4000, default=""
        )

    @extend_schema(responses=DatasetOutputSerializer(many=True), summary="List datasets")
    def get(self, request):  # noqa: D102
        return Response(DatasetOutputSerializer(dataset_list(), many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: DatasetOutputSerializer},
        summary="Create a dataset",
    )
    def post(self, request):  # noqa: D102
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        dataset = dataset_create(created_by=request.user, **payload.validated_data)
        return Response(
            DatasetOutputSerializer(dataset_get(dataset_id=dataset.pk)).data,
            status=status.HTTP_201_CREATED,
        )


class DatasetDetailApi(ApiView):
    """GET one dataset with its draft slides and its versions."""

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Get a dataset")
    def get(self, request, dataset_id: int):  # noqa: D102
        return Response(_dataset_detail(dataset_id))


class DatasetSlideAddApi(ReviewerOnlyForWrites):
    """POST adds an approved slide to the draft (reviewer role)."""

    @extend_schema_serializer(component_name="DatasetSlideAdd")
    class InputSerializer(serializers.Serializer):
        """The slide to add."""

        slide = serializers.IntegerField(min_value=1)

    @extend_schema(
        request=InputSerializer, responses={201: OpenApiTypes.OBJECT}, summary="Add a slide"
    )
    def post(self, request, dataset_id: int):  # noqa: D102
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        dataset = dataset_get(dataset_id=dataset_id)
        slide = slide_get(slide_id=payload.validated_data["slide"])
        dataset_slide_add(dataset=dataset, slide=slide, added_by=request.user)
        return Response(_dataset_detail(dataset.pk), status=status.HTTP_201_CREATED)


class DatasetSlideRemoveApi(ReviewerOnlyForWrites):
    """DELETE removes a slide from the draft (reviewer role); exported versions keep it."""

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT, summary="Remove a slide")
    def delete(self, request, dataset_id: int, slide_id: int):  # noqa: D102
        dataset = dataset_get(dataset_id=dataset_id)
        slide = slide_get(slide_id=slide_id)
        dataset_slide_remove(dataset=dataset, slide=slide, removed_by=request.user)
        return Response(_dataset_detail(dataset.pk))


class DatasetExportListApi(ReviewerOnlyForWrites):
    """GET lists a dataset's exports; POST freezes the draft and starts an export."""

    @extend_schema_serializer(component_name="DatasetExportCreate")
    class InputSerializer(serializers.Serializer):
        """Destination of the export's files."""

        target = serializers.ChoiceField(
            choices=DatasetExport.Target.choices, default=DatasetExport.Target.SERVER
        )

    @extend_schema(responses=ExportOutputSerializer(many=True), summary="List exports")
    def get(self, request, dataset_id: int):  # noqa: D102
        dataset = dataset_get(dataset_id=dataset_id)
        return Response(ExportOutputSerializer(export_list(dataset_id=dataset.pk), many=True).data)

    @extend_schema(
        request=InputSerializer, responses={201: ExportOutputSerializer}, summary="Start an export"
    )
    def post(self, request, dataset_id: int):  # noqa: D102
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        dataset = dataset_get(dataset_id=dataset_id)
        export = dataset_export(
            dataset=dataset, requested_by=request.user, target=payload.validated_data["target"]
        )
        return Response(
            ExportOutputSerializer(export_get(export_id=export.pk)).data,
            status=status.HTTP_201_CREATED,
        )


class ExportDetailApi(ApiView):
    """GET one export's status, frozen members and manifest."""

    @extend_schema(responses=ExportDetailOutputSerializer, summary="Get an export")
    def get(self, request, export_id: int):  # noqa: D102
        return Response(ExportDetailOutputSerializer(export_get(export_id=export_id)).data)


class ExportCancelApi(ReviewerOnlyForWrites):
    """POST cancels a queued or running export (reviewer role)."""

    @extend_schema(request=None, responses=ExportOutputSerializer, summary="Cancel an export")
    def post(self, request, export_id: int):  # noqa: D102
        export = export_cancel(export=export_get(export_id=export_id), cancelled_by=request.user)
        return Response(ExportOutputSerializer(export).data)


class ExportDownloadApi(ApiView):
    """GET the files of a succeeded export as one zip, when it is below the size limit."""

    content_negotiation_class = FirstRendererNegotiation

    @extend_schema(
        responses={(200, "application/zip"): OpenApiTypes.BINARY}, summary="Download an export"
    )
    def get(self, request, export_id: int):  # noqa: D102
        return export_zip_response(request._request, export_get(export_id=export_id))


class ExportManifestApi(ApiView):
    """GET manifest.json or manifest.csv of a succeeded export."""

    content_negotiation_class = FirstRendererNegotiation
    manifest_name = "manifest.json"

    @extend_schema(responses={200: OpenApiTypes.BINARY}, summary="Download an export's manifest")
    def get(self, request, export_id: int):  # noqa: D102
        return export_manifest_response(export_get(export_id=export_id), name=self.manifest_name)
