"""WSGI entry point for HTTP-only servers (no WebSocket progress; pages fall back to polling)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inkweb.settings")

application = get_wsgi_application()
