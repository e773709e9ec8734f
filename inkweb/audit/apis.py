"""Audit API: the filtered, paginated log and its CSV export (reviewer role)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers

from inkweb.accounts.permissions import IsReviewer
from inkweb.audit.filters import AuditFilterSerializer
from inkweb.audit.models import AuditEvent
from inkweb.audit.selectors import (
    audit_csv_header,
    audit_csv_lines,
    audit_event_batches,
    audit_event_list,
)
from inkweb.core.api import ApiView, FirstRendererNegotiation
from inkweb.core.pagination import paginated_response


class AuditEventOutputSerializer(serializers.ModelSerializer):
    """One audit event."""

    actor = serializers.CharField(source="actor_name")
    slide_id = serializers.IntegerField(allow_null=True)

    class Meta:
        """Every field is read-only."""

        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor",
            "action",
            "target_type",
            "target_id",
            "slide_id",
            "summary",
            "details",
        ]
        read_only_fields = fields


class AuditEventListApi(ApiView):
    """GET lists audit events, newest first, filtered and paginated."""

    permission_classes = [*ApiView.permission_classes, IsReviewer]

    @extend_schema(
        parameters=[AuditFilterSerializer],
        responses=AuditEventOutputSerializer(many=True),
        summary="List audit events",
    )
    def get(self, request):  # noqa: D102
        filters = AuditFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return paginated_response(
            queryset=audit_event_list(**filters.selector_arguments()),
            serializer_class=AuditEventOutputSerializer,
            request=request,
            view=self,
        )


def _next_batch(batches: Iterator[list[AuditEvent]]) -> list[AuditEvent] | None:
    return next(batches, None)


async def _csv_stream(events: QuerySet[AuditEvent]) -> AsyncIterator[str]:
    # An asynchronous iterator lets the ASGI server send rows as they are read; Django
    # would load a synchronous one into memory first. Each batch is one database query.
    yield audit_csv_header()
    batches = audit_event_batches(events)
    while True:
        batch = await sync_to_async(_next_batch)(batches)
        if batch is None:
            return
        yield audit_csv_lines(batch)


class AuditEventExportApi(ApiView):
    """GET the filtered audit log as a CSV file, streamed."""

    permission_classes = [*ApiView.permission_classes, IsReviewer]
    content_negotiation_class = FirstRendererNegotiation

    @extend_schema(
        parameters=[AuditFilterSerializer],
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY)},
        summary="Export audit events as CSV",
    )
    def get(self, request):  # noqa: D102
        filters = AuditFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        events = audit_event_list(**filters.selector_arguments())
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
        response = StreamingHttpResponse(_csv_stream(events), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="inkweb-audit-{stamp}.csv"'
        return response
