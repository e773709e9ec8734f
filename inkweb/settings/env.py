"""Parse environment variables into typed settings values, naming the variable on error."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE_WORDS = {"1", "true", "yes", "on"}
_FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    """Return the variable's value, or `default` when it is unset or empty."""
    value = os.environ.get(name, "").strip()
    return value or default


def env_bool(name: str, default: bool) -> bool:
    """Return a boolean from 1/0, true/false, yes/no or on/off."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean; use 1 or 0 (true/false, yes/no, on/off also work)"
    )


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    """Return an integer of at least `minimum`."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """Return a comma-separated list with blanks dropped."""
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_path(name: str, default: Path, *, base: Path) -> Path:
    """Return an absolute path; a relative value is taken relative to `base`."""
    raw = os.environ.get(name, "").strip()
    path = Path(raw).expanduser() if raw else default
    if not path.is_absolute():
        path = base / path
    return path.resolve()


def parse_database_url(url: str, *, base: Path) -> dict[str, object]:
    """Turn a DATABASE_URL into a Django DATABASES entry.

    Supported forms: ``sqlite:///relative/path.sqlite3``, ``sqlite:////absolute/path.sqlite3``
    and ``postgres://user:password@host:port/name?option=value`` (``postgresql://`` too).
    Query parameters of a PostgreSQL URL become connection OPTIONS, e.g. ``sslmode=require``.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()

    if scheme == "sqlite":
        # sqlite:///name is relative to the repository, sqlite:////name is absolute.
        raw_path = unquote(parts.path)
        if not raw_path or raw_path == "/":
            raise ImproperlyConfigured(
                f"DATABASE_URL={url!r} names no file; use sqlite:///var/db.sqlite3"
            )
        relative = raw_path[1:]
        path = Path(relative) if relative.startswith("/") else base / relative
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(path),
            "OPTIONS": {
                # WAL and a busy timeout let the web server and the workers, which are
                # separate processes, write to one SQLite file without "database is locked".
                "init_command": "PRAGMA journal_mode=WAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
        }

    if scheme in {"postgres", "postgresql", "pgsql"}:
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured(
                f"DATABASE_URL={url!r} names no database; add it after the host, "
                "e.g. postgres://postgres@127.0.0.1:5432/inkweb"
            )
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} has an invalid port") from None
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(port or ""),
            "OPTIONS": dict(parse_qsl(parts.query)),
            "CONN_HEALTH_CHECKS": True,
        }

    raise ImproperlyConfigured(
        f"DATABASE_URL scheme {parts.scheme!r} is not supported; use sqlite:/// or postgres://"
    )
