"""API routes of tiles (nested under a slide)."""

from django.urls import path, register_converter

from inkweb.tiles.apis import TileApi, TileInfoApi
from inkweb.tiles.converters import TileFormatConverter, TileKindConverter

register_converter(TileKindConverter, "tilekind")
register_converter(TileFormatConverter, "tileformat")

urlpatterns = [
    path("<int:slide_id>/tiles/<tilekind:kind>/info", TileInfoApi.as_view(), name="api-tile-info"),
    path(
        "<int:slide_id>/tiles/<tilekind:kind>/<int:z>/<int:x>/<int:y>.<tileformat:fmt>",
        TileApi.as_view(),
        name="api-tile",
    ),
]
