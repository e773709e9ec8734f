"""RQ job functions of the ingest queue; each one calls a service and broadcasts the result."""

from __future__ import annotations

import logging

from inkweb.slides.services import slide_broadcast_updated, slide_ingest

logger = logging.getLogger(__name__)


def slide_ingest_job(*, slide_id: int) -> str:
    """Ingest one stored slide and tell open pages; returns the final ingest status."""
    try:
        slide = slide_ingest(slide_id=slide_id)
    finally:
        slide_broadcast_updated(slide_id=slide_id)
    return slide.ingest_status
