"""WebSocket consumer that forwards run progress and slide updates to signed-in pages."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from inkweb.core.broadcast import ALL_ACTIVITY_GROUP, slide_group

logger = logging.getLogger(__name__)

# Close code for an unauthenticated socket (4000-4999 are free for applications).
CLOSE_UNAUTHENTICATED = 4401


class ProgressConsumer(AsyncJsonWebsocketConsumer):
    """/ws/progress/ streams every event; /ws/progress/?slide=ID only that slide's."""

    async def connect(self) -> None:  # noqa: D102
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return

        query = parse_qs(self.scope.get("query_string", b"").decode("ascii", "replace"))
        slide = query.get("slide", [""])[0]
        group = slide_group(int(slide)) if slide.isdigit() else ALL_ACTIVITY_GROUP
        self.joined_groups = [group]
        for name in self.joined_groups:
            await self.channel_layer.group_add(name, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:  # noqa: D102
        for name in getattr(self, "joined_groups", []):
            await self.channel_layer.group_discard(name, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        """Ignore client messages; the socket only pushes server events."""

    async def run_progress(self, event: dict) -> None:
        """Forward a run's state as {"event": "run", "run": {...}}."""
        await self.send_json({"event": "run", "run": event["run"]})

    async def slide_updated(self, event: dict) -> None:
        """Forward a slide change as {"event": "slide", "slide_id": ID}."""
        await self.send_json({"event": "slide", "slide_id": event["slide_id"]})
