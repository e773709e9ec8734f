"""API routes of the audit log."""

from django.urls import path

from inkweb.audit.apis import AuditEventExportApi, AuditEventListApi

urlpatterns = [
    path("", AuditEventListApi.as_view(), name="api-audit-list"),
    path("export.csv", AuditEventExportApi.as_view(), name="api-audit-export"),
]
