"""Progress WebSocket: authentication and delivery of broadcast events."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from inkweb.core.broadcast import broadcast_send, slide_group
from inkweb.runs.consumers import CLOSE_UNAUTHENTICATED, ProgressConsumer


def test_anonymous_socket_closed():
    async def scenario():
        communicator = WebsocketCommunicator(ProgressConsumer.as_asgi(), "/ws/progress/")
        communicator.scope["user"] = AnonymousUser()
        connected, code = await communicator.connect()
        assert not connected
        assert code == CLOSE_UNAUTHENTICATED

    async_to_sync(scenario)()


@pytest.mark.django_db
def test_slide_events_delivered(uploader):
    async def scenario():
        communicator = WebsocketCommunicator(ProgressConsumer.as_asgi(), "/ws/progress/?slide=7")
        communicator.scope["user"] = uploader
        connected, _ = await communicator.connect()
        assert connected

        run = {"id": 3, "slide_id": 7, "status": "running", "progress": 0.25}
        sent = await sync_to_async(broadcast_send)(
            groups=[slide_group(7)], message={"type": "run.progress", "run": run}
        )
        assert sent
        message = await communicator.receive_json_from(timeout=5)
        assert message == {"event": "run", "run": run}

        await sync_to_async(broadcast_send)(
            groups=[slide_group(8)], message={"type": "slide.updated", "slide_id": 8}
        )
        assert await communicator.receive_nothing(timeout=0.5)
        await communicator.disconnect()

    async_to_sync(scenario)()
