"""Admin pages of datasets: read-only, because datasets change through the services."""

from django.contrib import admin

from inkweb.datasets.models import Dataset, DatasetExport, DatasetVersion


class ReadOnlyAdmin(admin.ModelAdmin):
    """Lists and detail pages only; adding, changing and deleting are disabled."""

    def has_add_permission(self, request) -> bool:  # noqa: D102
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # noqa: D102
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # noqa: D102
        return False


@admin.register(Dataset)
class DatasetAdmin(ReadOnlyAdmin):
    """Datasets with their slug and creator."""

    list_display = ("id", "name", "slug", "created_by", "created_at")
    search_fields = ("name", "slug")


@admin.register(DatasetVersion)
class DatasetVersionAdmin(ReadOnlyAdmin):
    """Frozen versions."""

    list_display = ("id", "dataset", "number", "created_by", "created_at")


@admin.register(DatasetExport)
class DatasetExportAdmin(ReadOnlyAdmin):
    """Export jobs with their status and folder."""

    list_display = ("id", "dataset", "version", "status", "progress", "output_dir", "created_at")
    list_filter = ("status", "target")
