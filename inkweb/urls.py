"""Root URL configuration: pages, the REST API with its schema, and the admin."""

from django.contrib import admin
from django.contrib.auth.decorators import login_not_required, login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from inkweb.datasets.urls import dataset_api_patterns, export_api_patterns, page_patterns
from inkweb.reviews.urls import queue_urlpatterns
from inkweb.runs.apis import SlideRunCreateApi

api_patterns = [
    path("slides/", include("inkweb.slides.urls")),
    path("slides/", include("inkweb.reviews.urls")),
    path("slides/", include("inkweb.tiles.urls")),
    path("slides/<int:slide_id>/runs/", SlideRunCreateApi.as_view(), name="api-slide-runs"),
    path("runs/", include("inkweb.runs.urls")),
    path("datasets/", include(dataset_api_patterns)),
    path("exports/", include(export_api_patterns)),
    path("reviews/", include(queue_urlpatterns)),
    path("audit/", include("inkweb.audit.urls")),
    # The schema view checks IsAuthenticated itself (SPECTACULAR_SETTINGS) and returns 403.
    path("schema/", login_not_required(SpectacularAPIView.as_view()), name="api-schema"),
    # DRF views skip the login middleware, so the docs page requires a login itself.
    path(
        "docs/",
        login_required(SpectacularSwaggerView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
]

urlpatterns = [
    path("", include("inkweb.pages.urls")),
    path("", include(page_patterns)),
    path("api/", include(api_patterns)),
    path("admin/", admin.site.urls),
]

handler404 = "inkweb.core.errors.not_found"
