"""Admin pages of slides (read-mostly: files are managed through the services)."""

from django.contrib import admin

from inkweb.slides.models import Slide


@admin.register(Slide)
class SlideAdmin(admin.ModelAdmin):
    """List and inspect slides; the stored file paths and checksums are read-only."""

    list_display = (
        "id",
        "name",
        "format",
        "width",
        "height",
        "mpp_x",
        "ingest_status",
        "created_at",
    )
    list_filter = ("ingest_status", "format")
    search_fields = ("name", "original_filename", "sha256")
    readonly_fields = (
        "original_filename",
        "original_path",
        "file_size_bytes",
        "sha256",
        "format",
        "reader",
        "width",
        "height",
        "level_count",
        "mpp_x",
        "mpp_y",
        "associated_images",
        "info",
        "thumbnail_path",
        "ingest_status",
        "ingest_error",
        "ingested_at",
        "uploaded_by",
        "created_at",
        "updated_at",
    )
