"""Writes on run revisions: a reviewer's region corrections queued as a new run.

A revision is a PipelineRun of kind "revision" whose `parent` is the succeeded run it
corrects. Its worker applies the corrections to the parent's output with
pipeline.revise.revise_output instead of running the whole slide again. Once it has
succeeded it is an ordinary run: the slide's newest output, waiting for review.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from inkweb.accounts.roles import Role, user_has_role
from inkweb.core.exceptions import ApplicationError, ConflictError, ForbiddenError
from inkweb.core.storage import storage_absolute
from inkweb.runs.models import PipelineRun
from inkweb.runs.services import restore_method_check, run_create
from pipeline.corrections import InvalidCorrectionError, parse_corrections

logger = logging.getLogger(__name__)

# Rectangles accepted in one revision; more belong in a new full run.
MAX_CORRECTIONS = 50


def run_corrections_validate(*, run: PipelineRun, corrections: Any) -> list[dict[str, Any]]:
    """Check corrections against the size of `run`'s slide; return them in stored form.

    Raises ApplicationError (code "invalid_corrections") naming the rectangle at fault.
    """
    if not isinstance(corrections, list) or not corrections:
        raise ApplicationError(
            "Corrections must be a non-empty list of rectangles "
            "{x, y, width, height, action, method}.",
            code="invalid_corrections",
        )
    if len(corrections) > MAX_CORRECTIONS:
        raise ApplicationError(
            f"{len(corrections)} corrections were sent; one revision takes at most "
            f"{MAX_CORRECTIONS}. Submit them in several revisions.",
            code="invalid_corrections",
        )
    slide = run.slide
    if not slide.width or not slide.height:
        raise ConflictError(
            f"Slide {slide.pk} has no recorded size, so rectangles cannot be checked.",
            code="slide_size_unknown",
        )
    try:
        parsed = parse_corrections(corrections, width=slide.width, height=slide.height)
    except InvalidCorrectionError as error:
        raise ApplicationError(
            f"Invalid correction: {error}.", code="invalid_corrections"
        ) from error
    for method in sorted({correction.method for correction in parsed if correction.method}):
        restore_method_check(method)
    return [correction.to_dict() for correction in parsed]


def run_revise(
    *, run: PipelineRun, corrections: Any, requested_by: AbstractBaseUser
) -> PipelineRun:
    """Queue a revision of `run` that applies `corrections` to its output.

    Only reviewers may correct regions, only the slide's newest succeeded run with its
    output on disk can be corrected, and the slide may have no other queued or running
    run. The audit event (action run.correction) is written in the transaction that
    creates the revision.
    """
    if not user_has_role(requested_by, Role.REVIEWER):
        raise ForbiddenError(
            "Correcting regions needs the reviewer role; ask an administrator to grant it."
        )
    if run.status != PipelineRun.Status.SUCCEEDED:
        raise ConflictError(
            f"Run {run.pk} has status {run.status}; only a succeeded run's output can be "
            "corrected.",
            code="run_not_succeeded",
        )
    stored = run_corrections_validate(run=run, corrections=corrections)
    output = storage_absolute(run.output_dir) if run.output_dir else None
    if output is None or not (output / "restored.tiff").is_file():
        raise ConflictError(
            f"The output files of run {run.pk} are missing, so it cannot be corrected; "
            "start a new run of the slide.",
            code="run_output_missing",
        )

    revision = run_create(
        slide=run.slide,
        requested_by=requested_by,
        options=run.options,
        parent=run,
        corrections=stored,
    )
    logger.info(
        "Revision %s of run %s (slide %s) queued with %d corrections by user %s",
        revision.pk,
        run.pk,
        run.slide_id,
        len(stored),
        requested_by.pk,
    )
    return revision
