"""Admin pages of review decisions: read-only, because the log is append-only."""

from django.contrib import admin

from inkweb.reviews.models import ReviewDecision


@admin.register(ReviewDecision)
class ReviewDecisionAdmin(admin.ModelAdmin):
    """List decisions; adding, changing and deleting are disabled."""

    list_display = ("id", "slide", "run", "reviewer", "decision", "created_at")
    list_filter = ("decision",)
    search_fields = ("slide__name", "reviewer__username", "note")

    def has_add_permission(self, request) -> bool:  # noqa: D102
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # noqa: D102
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # noqa: D102
        return False
