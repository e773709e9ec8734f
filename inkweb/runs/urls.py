"""API routes of runs."""

from django.urls import path

from inkweb.runs.apis import RunCancelApi, RunDetailApi, RunListApi, RunRetryApi, RunRevisionsApi

urlpatterns = [
    path("", RunListApi.as_view(), name="api-run-list"),
    path("<int:run_id>/", RunDetailApi.as_view(), name="api-run-detail"),
    path("<int:run_id>/cancel/", RunCancelApi.as_view(), name="api-run-cancel"),
    path("<int:run_id>/retry/", RunRetryApi.as_view(), name="api-run-retry"),
    path("<int:run_id>/revisions/", RunRevisionsApi.as_view(), name="api-run-revisions"),
]
