"""App configuration of the shared plumbing."""

from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Create the storage folders once Django is set up."""

    name = "inkweb.core"
    label = "core"
    verbose_name = "InkWeb core"

    def ready(self) -> None:
        """Create the storage layout so that uploads and workers find their folders."""
        from inkweb.core.storage import storage_ensure_layout

        storage_ensure_layout()
