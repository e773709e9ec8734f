"""Query parameters of the audit log list, shared by the API and the audit page."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from inkweb.audit.models import AuditEvent


class AuditFilterSerializer(serializers.Serializer):
    """Optional filters: action, actor username, slide id and an inclusive date range."""

    action = serializers.ChoiceField(
        choices=AuditEvent.Action.choices, required=False, allow_blank=True
    )
    actor = serializers.CharField(required=False, allow_blank=True, max_length=150)
    slide = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    date_from = serializers.DateField(required=False, allow_null=True, help_text="YYYY-MM-DD")
    date_to = serializers.DateField(required=False, allow_null=True, help_text="YYYY-MM-DD")

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        """Treat empty parameters, as an HTML form sends them, as absent."""
        if hasattr(data, "dict"):
            data = data.dict()
        cleaned = {key: value for key, value in data.items() if value not in ("", None)}
        return super().to_internal_value(cleaned)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:  # noqa: D102
        start, end = attrs.get("date_from"), attrs.get("date_to")
        if start and end and start > end:
            raise serializers.ValidationError(
                {"date_to": f"The end date {end} is before the start date {start}."}
            )
        return attrs

    def selector_arguments(self) -> dict[str, Any]:
        """Return the validated filters as keyword arguments of audit_event_list."""
        values = self.validated_data
        return {
            "action": values.get("action") or None,
            "actor": (values.get("actor") or "").strip() or None,
            "slide_id": values.get("slide"),
            "date_from": values.get("date_from"),
            "date_to": values.get("date_to"),
        }
