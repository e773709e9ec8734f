"""Database settings from DATABASE_URL: SQLite by default, PostgreSQL through psycopg."""

from __future__ import annotations

from inkweb.settings.core import BASE_DIR, VAR_DIR
from inkweb.settings.env import env_str, parse_database_url

DATABASE_URL = env_str(
    "DATABASE_URL", f"sqlite:///{(VAR_DIR / 'db.sqlite3').relative_to(BASE_DIR)}"
)

DATABASES = {"default": parse_database_url(DATABASE_URL, base=BASE_DIR)}
