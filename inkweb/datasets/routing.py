"""WebSocket routes of datasets."""

from django.urls import path

from inkweb.datasets.consumers import ExportProgressConsumer

websocket_urlpatterns = [
    path("ws/exports/", ExportProgressConsumer.as_asgi()),
]
