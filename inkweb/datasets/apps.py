"""App configuration of datasets."""

from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    """Named collections of approved slides, frozen into versions that are exported."""

    name = "inkweb.datasets"
    label = "datasets"
