"""Admin pages of the audit log: read-only, because the log is append-only."""

from django.contrib import admin

from inkweb.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """List and search events; adding, changing and deleting are disabled."""

    list_display = ("id", "created_at", "actor_name", "action", "target_type", "target_id", "slide")
    list_filter = ("action", "target_type")
    search_fields = ("actor_name", "summary")
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:  # noqa: D102
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # noqa: D102
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # noqa: D102
        return False
