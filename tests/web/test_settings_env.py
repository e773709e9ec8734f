"""Settings parsing: environment values are validated and errors name the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from inkweb.settings.env import env_bool, env_int, env_list, parse_database_url
from tests.datapaths import REPO_ROOT

BASE = Path("/srv/inkweb")


def test_sqlite_url_relative_to_base():
    config = parse_database_url("sqlite:///var/db.sqlite3", base=BASE)
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == "/srv/inkweb/var/db.sqlite3"
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]


def test_sqlite_url_absolute():
    config = parse_database_url("sqlite:////data/inkweb.sqlite3", base=BASE)
    assert config["NAME"] == "/data/inkweb.sqlite3"


def test_postgres_url_parts():
    config = parse_database_url(
        "postgres://ink%40web:s3cr%2Ft@db.internal:6543/inkweb_test?sslmode=require", base=BASE
    )
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert config["NAME"] == "inkweb_test"
    assert config["USER"] == "ink@web"
    assert config["PASSWORD"] == "s3cr/t"
    assert config["HOST"] == "db.internal"
    assert config["PORT"] == "6543"
    assert config["OPTIONS"] == {"sslmode": "require"}


def test_postgresql_scheme_without_password():
    config = parse_database_url("postgresql://postgres@127.0.0.1/inkweb", base=BASE)
    assert config["USER"] == "postgres"
    assert config["PASSWORD"] == ""
    assert config["PORT"] == ""


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("mysql://root@localhost/inkweb", "scheme 'mysql' is not supported"),
        ("postgres://postgres@127.0.0.1:5432/", "names no database"),
        ("sqlite://", "names no file"),
        ("postgres://postgres@127.0.0.1:notaport/inkweb", "invalid port"),
    ],
)
def test_database_url_errors(url, fragment):
    with pytest.raises(ImproperlyConfigured, match=fragment):
        parse_database_url(url, base=BASE)


def test_env_bool_values(monkeypatch):
    monkeypatch.setenv("INKWEB_FLAG", "yes")
    assert env_bool("INKWEB_FLAG", False) is True
    monkeypatch.setenv("INKWEB_FLAG", "0")
    assert env_bool("INKWEB_FLAG", True) is False
    monkeypatch.delenv("INKWEB_FLAG")
    assert env_bool("INKWEB_FLAG", True) is True


def test_env_bool_rejects_other_words(monkeypatch):
    monkeypatch.setenv("INKWEB_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="INKWEB_FLAG='maybe' is not a boolean"):
        env_bool("INKWEB_FLAG", False)


def test_env_int_errors(monkeypatch):
    monkeypatch.setenv("INKWEB_SIZE", "12x")
    with pytest.raises(ImproperlyConfigured, match="INKWEB_SIZE='12x' is not an integer"):
        env_int("INKWEB_SIZE", 1)
    monkeypatch.setenv("INKWEB_SIZE", "-5")
    with pytest.raises(ImproperlyConfigured, match="below the minimum"):
        env_int("INKWEB_SIZE", 1, minimum=0)
    monkeypatch.setenv("INKWEB_SIZE", "1_000")
    assert env_int("INKWEB_SIZE", 1) == 1000


def test_env_list_strips_blanks(monkeypatch):
    monkeypatch.setenv("INKWEB_HOSTS", " a.example , ,b.example")
    assert env_list("INKWEB_HOSTS", []) == ["a.example", "b.example"]


def _import_settings(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("INKWEB_")}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import inkweb.settings"],
        cwd=REPO_ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_secret_key_required_without_debug():
    result = _import_settings({"INKWEB_DEBUG": "0"})
    assert result.returncode != 0
    assert "INKWEB_SECRET_KEY is not set" in result.stderr


def test_bad_allowed_debug_value_named():
    result = _import_settings({"INKWEB_DEBUG": "perhaps", "INKWEB_SECRET_KEY": "x" * 50})
    assert result.returncode != 0
    assert "INKWEB_DEBUG='perhaps' is not a boolean" in result.stderr
