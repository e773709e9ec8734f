"""WebSocket routes."""

from django.urls import path

from inkweb.runs.consumers import ProgressConsumer

websocket_urlpatterns = [
    path("ws/progress/", ProgressConsumer.as_asgi()),
]
