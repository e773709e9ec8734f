"""API and page routes of datasets and their exports."""

from django.urls import path

from inkweb.datasets import apis, views

dataset_api_patterns = [
    path("", apis.DatasetListApi.as_view(), name="api-dataset-list"),
    path("<int:dataset_id>/", apis.DatasetDetailApi.as_view(), name="api-dataset-detail"),
    path("<int:dataset_id>/slides/", apis.DatasetSlideAddApi.as_view(), name="api-dataset-slides"),
    path(
        "<int:dataset_id>/slides/<int:slide_id>/",
        apis.DatasetSlideRemoveApi.as_view(),
        name="api-dataset-slide",
    ),
    path(
        "<int:dataset_id>/exports/",
        apis.DatasetExportListApi.as_view(),
        name="api-dataset-exports",
    ),
]

export_api_patterns = [
    path("<int:export_id>/", apis.ExportDetailApi.as_view(), name="api-export-detail"),
    path("<int:export_id>/cancel/", apis.ExportCancelApi.as_view(), name="api-export-cancel"),
    path("<int:export_id>/download/", apis.ExportDownloadApi.as_view(), name="api-export-download"),
    path(
        "<int:export_id>/manifest.json",
        apis.ExportManifestApi.as_view(manifest_name="manifest.json"),
        name="api-export-manifest-json",
    ),
    path(
        "<int:export_id>/manifest.csv",
        apis.ExportManifestApi.as_view(manifest_name="manifest.csv"),
        name="api-export-manifest-csv",
    ),
]

page_patterns = [
    path("datasets/", views.dataset_list_page, name="dataset-list"),
    path("datasets/<int:dataset_id>/", views.dataset_detail_page, name="dataset-detail"),
]
