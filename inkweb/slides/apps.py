"""App configuration of slides."""

from django.apps import AppConfig


class SlidesConfig(AppConfig):
    """Whole-slide images stored read-only under INKWEB_STORAGE/originals."""

    name = "inkweb.slides"
    label = "slides"
