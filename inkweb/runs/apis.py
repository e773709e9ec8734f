"""Run API: start a run on a slide, list, detail, cancel and retry."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from inkweb.accounts.permissions import IsReviewer, IsUploader
from inkweb.core.api import ApiView
from inkweb.core.pagination import paginated_response
from inkweb.runs.models import PipelineRun
from inkweb.runs.revisions import MAX_CORRECTIONS, run_revise
from inkweb.runs.selectors import run_get, run_lineage, run_list
from inkweb.runs.services import run_cancel, run_create, run_retry
from inkweb.slides.selectors import slide_get
from pipeline.corrections import CORRECTION_ACTIONS
from pipeline.options import RESTORE_METHODS


class RunOutputSerializer(serializers.ModelSerializer):
    """A run with its progress; the report only in the detail view."""

    slide_id = serializers.IntegerField()
    requested_by = serializers.CharField(source="requested_by.username", default=None)
    retry_of_id = serializers.IntegerField(allow_null=True)
    parent_id = serializers.IntegerField(allow_null=True)

    class Meta:
        """Every field is read-only."""

        model = PipelineRun
        fields = [
            "id",
            "slide_id",
            "status",
            "progress",
            "stage",
            "message",
            "error",
            "device",
            "options",
            "ink_found",
            "requested_by",
            "retry_of_id",
            "kind",
            "parent_id",
            "corrections",
            "rq_job_id",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class RunDetailOutputSerializer(RunOutputSerializer):
    """A run with its full pipeline report."""

    class Meta(RunOutputSerializer.Meta):
        """The list fields plus the report."""

        fields = [*RunOutputSerializer.Meta.fields, "report"]
        read_only_fields = fields


class RoleRequiredForPost(ApiView):
    """Base of run APIs whose POST needs a role: `post_permission`, the uploader's by default."""

    post_permission: type[BasePermission] = IsUploader

    def get_permissions(self):  # noqa: D102
        if self.request.method == "POST":
            return [
                permission() for permission in (*self.permission_classes, self.post_permission)
            ]
        return super().get_permissions()


class SlideRunCreateApi(RoleRequiredForPost):
    """POST starts ink removal on a slide ("Remove ink")."""

    @extend_schema_serializer(component_name="RunCreate")
    class InputSerializer(serializers.Serializer):
        """Pipeline options by name; empty for the defaults."""

        options = serializers.DictField(required=False, default=dict)

    @extend_schema(
        request=InputSerializer, responses={201: RunOutputSerializer}, summary="Start a run"
    )
    def post(self, request, slide_id: int):  # noqa: D102
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        slide = slide_get(slide_id=slide_id)
        run = run_create(
            slide=slide, requested_by=request.user, options=payload.validated_data["options"]
        )
        return Response(
            RunOutputSerializer(run_get(run_id=run.pk)).data, status=status.HTTP_201_CREATED
        )


class RunListApi(ApiView):
    """GET lists runs, newest first."""

    class FilterSerializer(serializers.Serializer):
        """Query parameters of the run list."""

        slide = serializers.IntegerField(required=False, min_value=1)
        active = serializers.BooleanField(required=False, allow_null=True, default=None)

    @extend_schema(
        parameters=[
            OpenApiParameter("slide", int, description="only runs of this slide"),
            OpenApiParameter(
                "active", bool, description="true: queued or running; false: finished"
            ),
        ],
        responses=RunOutputSerializer(many=True),
        summary="List runs",
    )
    def get(self, request):  # noqa: D102
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        runs = run_list(
            slide_id=filters.validated_data.get("slide"), active=filters.validated_data["active"]
        )
        return paginated_response(
            queryset=runs, serializer_class=RunOutputSerializer, request=request, view=self
        )


class RunDetailApi(ApiView):
    """GET one run with its report."""

    @extend_schema(responses=RunDetailOutputSerializer, summary="Get a run")
    def get(self, request, run_id: int):  # noqa: D102
        return Response(RunDetailOutputSerializer(run_get(run_id=run_id)).data)


class RunCancelApi(RoleRequiredForPost):
    """POST cancels a queued or running run."""

    @extend_schema(request=None, responses=RunOutputSerializer, summary="Cancel a run")
    def post(self, request, run_id: int):  # noqa: D102
        run = run_cancel(run=run_get(run_id=run_id), cancelled_by=request.user)
        return Response(RunOutputSerializer(run).data)


class RunRetryApi(RoleRequiredForPost):
    """POST starts a new run with the options of a failed or cancelled one."""

    @extend_schema(request=None, responses={201: RunOutputSerializer}, summary="Retry a run")
    def post(self, request, run_id: int):  # noqa: D102
        run = run_retry(run=run_get(run_id=run_id), requested_by=request.user)
        return Response(
            RunOutputSerializer(run_get(run_id=run.pk)).data, status=status.HTTP_201_CREATED
        )


@extend_schema_serializer(component_name="Correction")
class CorrectionInputSerializer(serializers.Serializer):
    """A rectangle in level-0 pixels and what to do inside it."""

    x = serializers.IntegerField(min_value=0)
    y = serializers.IntegerField(min_value=0)
    width = serializers.IntegerField(min_value=1)
    height = serializers.IntegerField(min_value=1)
    action = serializers.ChoiceField(choices=CORRECTION_ACTIONS)
    method = serializers.ChoiceField(
        choices=RESTORE_METHODS,
        required=False,
        help_text='Restore method of a "restore" correction; "od" when absent.',
    )


class RunRevisionsApi(RoleRequiredForPost):
    """GET lists a run's lineage; POST (reviewers) queues a revision correcting regions."""

    post_permission = IsReviewer

    @extend_schema_serializer(component_name="RunRevisionCreate")
    class InputSerializer(serializers.Serializer):
        """The rectangles of one revision, applied in order (a later one wins on overlap)."""

        corrections = CorrectionInputSerializer(many=True, max_length=MAX_CORRECTIONS)

    @extend_schema(responses=RunOutputSerializer(many=True), summary="List a run's lineage")
    def get(self, request, run_id: int):  # noqa: D102
        lineage = run_lineage(run=run_get(run_id=run_id))
        return Response(RunOutputSerializer(lineage, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: RunOutputSerializer},
        summary="Correct regions of a run",
    )
    def post(self, request, run_id: int):  # noqa: D102
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        revision = run_revise(
            run=run_get(run_id=run_id),
            corrections=[dict(item) for item in payload.validated_data["corrections"]],
            requested_by=request.user,
        )
        return Response(
            RunOutputSerializer(run_get(run_id=revision.pk)).data, status=status.HTTP_201_CREATED
        )
