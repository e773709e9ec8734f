"""Tile API: pyramid metadata and z/x/y tiles of the original, restored and mask images."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.response import Response

from inkweb.core.api import ApiView, FirstRendererNegotiation
from inkweb.tiles.selectors import (
    tile_etag,
    tile_format,
    tile_get,
    tile_info_get,
    tile_source_resolve,
)

RUN_PARAMETER = OpenApiParameter(
    "run", int, description="run whose restored or mask image to use; default: newest succeeded"
)


class TileQuerySerializer(serializers.Serializer):
    """Query parameters of the tile endpoints."""

    run = serializers.IntegerField(required=False, min_value=1)


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [part.strip().removeprefix("W/") for part in header.split(",")]
    return "*" in candidates or etag in candidates


class TileInfoApi(ApiView):
    """GET the size, tile size, level count and resolution of one kind of image."""

    @extend_schema_serializer(component_name="TileInfo")
    class OutputSerializer(serializers.Serializer):
        """Pyramid metadata in large-image naming, plus the tile URL template."""

        # Field names follow large-image's tile metadata, which the viewer code mirrors.
        kind = serializers.CharField()
        run_id = serializers.IntegerField(allow_null=True)
        sizeX = serializers.IntegerField()
        sizeY = serializers.IntegerField()
        tileWidth = serializers.IntegerField()
        tileHeight = serializers.IntegerField()
        levels = serializers.IntegerField()
        mm_x = serializers.FloatField(allow_null=True)
        mm_y = serializers.FloatField(allow_null=True)
        format = serializers.CharField()
        tile_url_template = serializers.CharField()

    @extend_schema(parameters=[RUN_PARAMETER], responses=OutputSerializer, summary="Tile metadata")
    def get(self, request, slide_id: int, kind: str):  # noqa: D102
        query = TileQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        ref = tile_source_resolve(
            slide_id=slide_id, kind=kind, run_id=query.validated_data.get("run")
        )
        return Response(self.OutputSerializer(tile_info_get(ref=ref)).data)


class TileApi(ApiView):
    """GET one tile; z = 0 is the lowest resolution level (large-image's convention)."""

    content_negotiation_class = FirstRendererNegotiation

    @extend_schema(
        parameters=[RUN_PARAMETER],
        responses={
            (200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY, description="JPEG tile"),
            (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="PNG tile"),
            304: OpenApiResponse(description="unchanged since the ETag in If-None-Match"),
            404: OpenApiResponse(description="no such slide, output, or tile outside the pyramid"),
            502: OpenApiResponse(description="the stored image could not be decoded"),
        },
        summary="Get a tile",
    )
    def get(self, request, slide_id: int, kind: str, z: int, x: int, y: int, fmt: str):  # noqa: D102
        query = TileQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        fmt = tile_format(kind=kind, requested=fmt)
        ref = tile_source_resolve(
            slide_id=slide_id, kind=kind, run_id=query.validated_data.get("run")
        )
        cache_control = f"private, max-age={settings.INKWEB_TILE_CACHE_SECONDS}"

        etag = tile_etag(ref=ref, z=z, x=x, y=y, fmt=fmt)
        if _etag_matches(request.headers.get("If-None-Match", ""), etag):
            response = HttpResponse(status=304)
        else:
            tile = tile_get(ref=ref, z=z, x=x, y=y, fmt=fmt)
            response = HttpResponse(tile.content, content_type=tile.content_type)
        response["ETag"] = etag
        response["Cache-Control"] = cache_control
        return response
