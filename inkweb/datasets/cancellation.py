"""Cancellation flags in Redis that the export worker's progress callback checks."""

from __future__ import annotations

from inkweb.core.redis import redis_connection

CANCEL_FLAG_TTL_SECONDS = 7 * 24 * 3600

# The end of a running export's message once cancelled, before and after the worker stops.
CANCEL_STOPPING_SUFFIX = "; stopping at the next step."
CANCEL_STOPPED_SUFFIX = "; stopped."


def _flag_key(export_id: int) -> str:
    return f"inkweb:export:{export_id}:cancel"


def export_cancel_flag_set(*, export_id: int) -> None:
    """Ask the worker executing `export_id` to stop at its next progress step."""
    redis_connection().set(_flag_key(export_id), b"1", ex=CANCEL_FLAG_TTL_SECONDS)


def export_cancel_flag_is_set(*, export_id: int) -> bool:
    """Return True when cancellation of `export_id` was requested."""
    return bool(redis_connection().exists(_flag_key(export_id)))


def export_cancel_flag_clear(*, export_id: int) -> None:
    """Remove the flag once the export has stopped."""
    redis_connection().delete(_flag_key(export_id))
