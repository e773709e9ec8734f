"""Cancellation flags in Redis that the worker's progress callback checks."""

from __future__ import annotations

from inkweb.core.redis import redis_connection

CANCEL_FLAG_TTL_SECONDS = 7 * 24 * 3600


def _flag_key(run_id: int) -> str:
    return f"inkweb:run:{run_id}:cancel"


def cancel_flag_set(*, run_id: int) -> None:
    """Ask the worker executing `run_id` to stop at its next progress step."""
    redis_connection().set(_flag_key(run_id), b"1", ex=CANCEL_FLAG_TTL_SECONDS)


def cancel_flag_is_set(*, run_id: int) -> bool:
    """Return True when cancellation of `run_id` was requested."""
    return bool(redis_connection().exists(_flag_key(run_id)))


def cancel_flag_clear(*, run_id: int) -> None:
    """Remove the flag once the run has stopped."""
    redis_connection().delete(_flag_key(run_id))
