"""Limit/offset pagination helper for list APIs that build their own querysets."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class DefaultPagination(LimitOffsetPagination):
    """?limit=&offset= with a default page of 100 and a maximum of 500 rows."""

    default_limit = 100
    max_limit = 500


def paginated_response(
    *,
    queryset: QuerySet,
    serializer_class: type[serializers.Serializer],
    request: Request,
    view: APIView,
) -> Response:
    """Return one page of `queryset` as {count, next, previous, results}."""
    paginator = DefaultPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    serializer = serializer_class(page, many=True, context={"request": request})
    return paginator.get_paginated_response(serializer.data)
