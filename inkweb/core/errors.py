"""Error pages: JSON for the API, Django's HTML pages everywhere else."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Return a JSON 404 under /api/, so API clients never have to parse an HTML page."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": f"No API endpoint or object at {request.path}.", "code": "not_found"},
            status=404,
        )
    return defaults.page_not_found(request, exception)
