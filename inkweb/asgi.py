"""ASGI entry point: Django for HTTP, Channels for the progress WebSocket.

Serve with `uvicorn --host 127.0.0.1 --port 8000 --ws websockets inkweb.asgi:application`.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inkweb.settings")

# Django must be set up before the imports below load models through the consumers.
django_asgi_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from inkweb.datasets.routing import websocket_urlpatterns as dataset_routes  # noqa: E402
from inkweb.runs.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_application,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([*websocket_urlpatterns, *dataset_routes]))
        ),
    }
)
