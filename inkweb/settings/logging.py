"""Logging: one console stream for the web server and the workers, level from INKWEB_LOG_LEVEL."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from inkweb.settings.env import env_str

INKWEB_LOG_LEVEL = env_str("INKWEB_LOG_LEVEL", "INFO").upper()
if INKWEB_LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"INKWEB_LOG_LEVEL={INKWEB_LOG_LEVEL!r} is not a level; use DEBUG, INFO, WARNING or ERROR"
    )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)-7s %(process)d %(name)s: %(message)s",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "inkweb": {"level": INKWEB_LOG_LEVEL},
        "pipeline": {"level": INKWEB_LOG_LEVEL},
        "rq.worker": {"handlers": ["console"], "level": INKWEB_LOG_LEVEL, "propagate": False},
        "django": {"level": "INFO"},
        "django.request": {"level": "ERROR"},
        "daphne": {"level": "WARNING"},
        "large_image": {"level": "WARNING"},
    },
}
