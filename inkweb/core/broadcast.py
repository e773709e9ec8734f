"""Send events to WebSocket groups from synchronous code (views, services, RQ workers).

Each call builds a private channel-layer instance, sends, and closes that instance's
Redis pools inside the same coroutine. The shared layer of the process is never used
here, because its pools belong to the event loop of the consumers, and channels_redis
raises "Event loop is closed" when a pool created in one `async_to_sync` loop is reused
from the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

ALL_ACTIVITY_GROUP = "runs"


def slide_group(slide_id: int) -> str:
    """Return the group name of one slide's events."""
    return f"slide-{slide_id}"


def broadcast_send(*, groups: Iterable[str], message: dict[str, Any]) -> bool:
    """Send `message` (with a "type" key naming the consumer handler) to every group.

    Returns False, after logging, when the channel layer cannot be reached: progress
    messages are best effort and the database row stays the source of truth.
    """
    group_names = list(groups)

    async def send_then_close() -> None:
        layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
        try:
            for group in group_names:
                await layer.group_send(group, message)
        finally:
            close_pools = getattr(layer, "close_pools", None)
            if close_pools is not None:
                await close_pools()

    try:
        async_to_sync(send_then_close)()
    except (RedisError, OSError) as error:
        logger.warning("Broadcast of %s to %s failed: %s", message.get("type"), group_names, error)
        return False
    return True
