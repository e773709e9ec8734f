"""Redis clients for RQ and cancellation flags, one per URL and process."""

from __future__ import annotations

import functools

import redis
from django.conf import settings


@functools.cache
def _client_for(url: str) -> redis.Redis:
    # RQ stores pickled bytes, so responses must stay undecoded.
    return redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


def redis_connection() -> redis.Redis:
    """Return the process-wide client for settings.REDIS_URL."""
    return _client_for(settings.REDIS_URL)
