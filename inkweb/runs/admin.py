"""Admin pages of pipeline runs (read-only: runs change through the services)."""

from django.contrib import admin

from inkweb.runs.models import PipelineRun


@admin.register(PipelineRun)
class PipelineRunAdmin(admin.ModelAdmin):
    """Inspect runs, their progress, errors and reports."""

    list_display = (
        "id",
        "slide",
        "status",
        "kind",
        "parent",
        "progress",
        "stage",
        "device",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "kind", "device")
    search_fields = ("slide__name", "rq_job_id")

    def has_change_permission(self, request, obj=None) -> bool:  # noqa: D102
        return False

    def has_add_permission(self, request) -> bool:  # noqa: D102
        return False
