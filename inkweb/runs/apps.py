"""App configuration of runs."""

from django.apps import AppConfig


class RunsConfig(AppConfig):
    """Ink-removal runs of the pipeline on stored slides."""

    name = "inkweb.runs"
    label = "runs"
