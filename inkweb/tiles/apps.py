"""App configuration of tiles."""

from django.apps import AppConfig


class TilesConfig(AppConfig):
    """Tile endpoints for the OpenSeadragon viewers; no models."""

    name = "inkweb.tiles"
    label = "tiles"
