"""Application errors and the one handler that turns every API error into {detail, code}."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.settings import api_settings

from pipeline.errors import InkRemovalError, RunCancelled, SlideReadError, UnsupportedSlideError

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """Base of the errors that services raise for a caller to show.

    Subclasses set `status_code` (the HTTP status of the API response) and `code`
    (a stable machine-readable name). The message is the human-readable detail.
    """

    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.detail = message
        if code is not None:
            self.code = code


class NotFoundError(ApplicationError):
    """A requested object does not exist or is not visible to the user."""

    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class ConflictError(ApplicationError):
    """The request does not fit the current state of an object."""

    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class ForbiddenError(ApplicationError):
    """The user is signed in but lacks the role the action needs."""

    status_code = status.HTTP_403_FORBIDDEN
    code = "permission_denied"


class UpstreamReadError(ApplicationError):
    """Reading stored image data failed (a corrupt tile or an unreadable file)."""

    status_code = status.HTTP_502_BAD_GATEWAY
    code = "read_failed"


def _pipeline_error_response(exc: InkRemovalError) -> tuple[int, str]:
    if isinstance(exc, UnsupportedSlideError):
        return status.HTTP_400_BAD_REQUEST, "slide_unsupported"
    if isinstance(exc, SlideReadError):
        return status.HTTP_400_BAD_REQUEST, "slide_unreadable"
    if isinstance(exc, RunCancelled):
        return status.HTTP_409_CONFLICT, "run_cancelled"
    return status.HTTP_500_INTERNAL_SERVER_ERROR, "pipeline_error"


def _error_messages(errors: Any, path: str = "") -> list[tuple[str, str]]:
    """Flatten nested DRF error details into (path, message) pairs.

    Paths read like the input: "corrections[0].width". Items of a list field are keyed by
    their index, as a dict (DRF 3.15 list serializers) or a list with empty entries for
    valid items. Errors under the non-field key belong to the object that contains them.
    """
    if isinstance(errors, dict):
        pairs = []
        for key, value in errors.items():
            if isinstance(key, int):
                child = f"{path}[{key}]"
            elif key == api_settings.NON_FIELD_ERRORS_KEY:
                child = path
            else:
                child = f"{path}.{key}" if path else str(key)
            pairs.extend(_error_messages(value, child))
        return pairs
    if isinstance(errors, list):
        if all(isinstance(item, str) for item in errors):
            return [(path, str(item)) for item in errors]
        pairs = []
        for index, item in enumerate(errors):
            if isinstance(item, str):
                pairs.append((path, str(item)))
            elif item:
                pairs.extend(_error_messages(item, f"{path}[{index}]"))
        return pairs
    return [(path, str(errors))]


def _validation_body(exc: drf_exceptions.ValidationError) -> dict[str, Any]:
    fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
    messages = [
        f"{path}: {message}" if path else message for path, message in _error_messages(fields)
    ]
    return {"detail": " ".join(messages) or "Invalid input.", "code": "invalid", "fields": fields}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """Turn any exception raised in an API view into a JSON response {detail, code}.

    Validation errors add "fields" with the per-field messages. Unexpected exceptions are
    logged with their traceback and get a 500 response, so that API clients always get JSON.
    """
    if isinstance(exc, DjangoValidationError):
        exc = drf_exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, Http404):
        exc = drf_exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied(str(exc) or None)

    if isinstance(exc, ApplicationError):
        return Response({"detail": exc.detail, "code": exc.code}, status=exc.status_code)

    if isinstance(exc, InkRemovalError):
        status_code, code = _pipeline_error_response(exc)
        return Response({"detail": str(exc), "code": code}, status=status_code)

    if isinstance(exc, drf_exceptions.ValidationError):
        return Response(_validation_body(exc), status=exc.status_code)

    if isinstance(exc, drf_exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(exc.wait)
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        return Response({"detail": detail, "code": code}, status=exc.status_code, headers=headers)

    view = context.get("view")
    logger.exception("Unexpected error in %s", type(view).__name__ if view else "an API view")
    return Response(
        {
            "detail": "Internal server error; the server log has the details.",
            "code": "server_error",
        },
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
