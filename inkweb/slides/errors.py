"""Errors of the slides app, each with its HTTP status and machine-readable code."""

from __future__ import annotations

from inkweb.core.exceptions import ApplicationError, ConflictError


class SlideRejectedError(ApplicationError):
    """The file is not a slide the pipeline can read; nothing of it was kept."""

    code = "slide_rejected"


class SlideTooLargeError(ApplicationError):
    """The upload is larger than INKWEB_MAX_UPLOAD_BYTES."""

    status_code = 413
    code = "slide_too_large"


class SlideDuplicateError(ConflictError):
    """A slide with the same SHA-256 is already stored."""

    code = "duplicate_slide"

    def __init__(self, message: str, *, existing_slide_id: int) -> None:
        super().__init__(message)
        self.existing_slide_id = existing_slide_id
