"""Base class and helpers shared by the API views of every app."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_not_required
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.views import APIView


class ApiView(APIView):
    """APIView that the page login middleware lets through.

    The API rejects unauthenticated requests itself with 403 JSON (through the
    IsAuthenticated default permission) instead of a redirect to the login page.
    """

    @classmethod
    def as_view(cls, **initkwargs: Any):
        """Return the view function, exempt from the page login redirect."""
        return login_not_required(super().as_view(**initkwargs))


class FirstRendererNegotiation(BaseContentNegotiation):
    """Content negotiation that ignores the Accept header, so image endpoints return JSON errors.

    Browsers request tiles with "Accept: image/*", which matches no DRF renderer. The
    default negotiation would return 406 before the view could send the image.
    """

    def select_parser(self, request, parsers):  # noqa: D102
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):  # noqa: D102
        return renderers[0], renderers[0].media_type
