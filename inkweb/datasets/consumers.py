"""WebSocket consumer that forwards one dataset's export progress to signed-in pages."""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from inkweb.datasets.events import dataset_group

# Close codes (4000-4999 are free for applications).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_BAD_REQUEST = 4400


class ExportProgressConsumer(AsyncJsonWebsocketConsumer):
    """/ws/exports/?dataset=ID streams the export events of dataset ID."""

    async def connect(self) -> None:  # noqa: D102
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return

        query = parse_qs(self.scope.get("query_string", b"").decode("ascii", "replace"))
        dataset = query.get("dataset", [""])[0]
        if not dataset.isdigit():
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        self.group = dataset_group(int(dataset))
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:  # noqa: D102
        group = getattr(self, "group", None)
        if group is not None:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        """Ignore client messages; the socket only pushes server events."""

    async def export_progress(self, event: dict) -> None:
        """Forward an export's state as {"event": "export", "export": {...}}."""
        await self.send_json({"event": "export", "export": event["export"]})
