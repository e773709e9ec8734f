"""Redis-backed services: the cache, the channel layer for WebSockets and the RQ queues."""

from __future__ import annotations

from inkweb.settings.env import env_int, env_str

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")

# Tile bytes live in Redis this long, and browsers may reuse a tile this long.
INKWEB_TILE_CACHE_SECONDS = env_int("INKWEB_TILE_CACHE_SECONDS", 24 * 3600)

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "inkweb",
        "TIMEOUT": 300,
    },
    "tiles": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "inkweb-tiles",
        "TIMEOUT": INKWEB_TILE_CACHE_SECONDS,
    },
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 reads with a 5 s socket timeout by default, which ends the
            # consumers' blocking BZPOPMIN (also 5 s) with TimeoutError; allow longer reads.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
            "prefix": "inkweb:asgi",
        },
    },
}

INKWEB_INGEST_QUEUE = "ingest"
INKWEB_GPU_QUEUE = "gpu"

# A pipeline run or an ingest that takes longer than this is stopped by its worker.
INKWEB_RUN_TIMEOUT_SECONDS = env_int("INKWEB_RUN_TIMEOUT_SECONDS", 6 * 3600, minimum=60)
INKWEB_INGEST_TIMEOUT_SECONDS = env_int("INKWEB_INGEST_TIMEOUT_SECONDS", 3600, minimum=60)

# "auto" picks CUDA when torch finds a GPU, else the CPU.
INKWEB_WORKER_DEVICE = env_str("INKWEB_WORKER_DEVICE", "auto")

# Minimum seconds between two progress writes (database row and WebSocket message) of a run.
INKWEB_PROGRESS_INTERVAL_SECONDS = 0.5
