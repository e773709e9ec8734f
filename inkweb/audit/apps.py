"""App configuration of audit."""

from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The audit log: who did what to which object, and when."""

    name = "inkweb.audit"
    label = "audit"
