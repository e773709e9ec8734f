"""A live InkWeb deployment for tests: uvicorn and RQ workers as real subprocesses.

The processes share a database that outlives the test transaction: a SQLite file by
default, or a fresh PostgreSQL database on the server of $DATABASE_URL when it is a
postgres:// URL. Redis is the real one, on a database number of its own that is
flushed before and after.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
import requests

from tests.datapaths import REPO_ROOT

LIVE_REDIS_URL = os.environ.get("INKWEB_LIVE_REDIS_URL", "redis://127.0.0.1:6379/14")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LiveStack:
    """Start, use and stop one deployment rooted in a temporary folder."""

    def __init__(self, root: Path, *, collect_static: bool = False) -> None:
        self.root = root
        self.collect_static = collect_static
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.storage = root / "storage"
        self.processes: dict[str, subprocess.Popen] = {}
        self._postgres_admin_url: str | None = None
        self._postgres_name: str | None = None
        self.env = self._environment()

    # ---- set-up -------------------------------------------------------------

    def _database_url(self) -> str:
        configured = os.environ.get("DATABASE_URL", "")
        if not configured.startswith(("postgres://", "postgresql://")):
            # An absolute path after "sqlite:///" gives the four slashes of an absolute URL.
            return f"sqlite:///{(self.root / 'db.sqlite3').resolve()}"

        import psycopg

        parts = urlsplit(configured)
        self._postgres_name = f"inkweb_live_{os.getpid()}_{secrets.token_hex(3)}"
        self._postgres_admin_url = urlunsplit(parts._replace(path="/postgres", query=""))
        with psycopg.connect(self._postgres_admin_url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{self._postgres_name}"')
        return urlunsplit(parts._replace(path=f"/{self._postgres_name}"))

    def _environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("INKWEB_") and key not in {"DATABASE_URL", "REDIS_URL"}
        }
        env.update(
            {
                "INKWEB_SECRET_KEY": secrets.token_urlsafe(50),
                "INKWEB_DEBUG": "0",
                "INKWEB_ALLOWED_HOSTS": "127.0.0.1,localhost",
                "DATABASE_URL": self._database_url(),
                "REDIS_URL": LIVE_REDIS_URL,
                "INKWEB_STORAGE": str(self.storage),
                "INKWEB_STATIC_ROOT": str(self.root / "static"),
                "INKWEB_WORKER_DEVICE": "cpu",
                "INKWEB_LOG_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def manage(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run a management command against this deployment; raise with its output on failure."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"manage.py {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def _spawn(self, name: str, command: list[str]) -> None:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        self.processes[name] = subprocess.Popen(
            command, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def start(self) -> None:
        """Migrate, then start the ASGI server and one worker per queue; wait for HTTP."""
        redis.Redis.from_url(LIVE_REDIS_URL).flushdb()
        self.manage("migrate", "--noinput")
        if self.collect_static:
            self.manage("collectstatic", "--noinput")
        server = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(self.port),
                  "--ws", "websockets", "--no-access-log"]
        self._spawn("web", [*server, "inkweb.asgi:application"])
        self._spawn("worker-ingest", [sys.executable, "manage.py", "inkweb_worker", "ingest"])
        self._spawn("worker-gpu", [sys.executable, "manage.py", "inkweb_worker", "gpu"])
        self._wait_for_http(timeout=60)

    def _wait_for_http(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if requests.get(f"{self.base_url}/accounts/login/", timeout=5).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the web server did not respond within {timeout} s\n{self.logs()}")

    # ---- use ----------------------------------------------------------------

    def check_alive(self) -> None:
        """Raise with the logs when a process of the deployment has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}\n{self.logs()}")

    def logs(self, tail_chars: int = 4000) -> str:
        """Return the end of every process log, for failure messages."""
        parts = []
        for path in sorted(self.root.glob("*.log")):
            parts.append(f"--- {path.name} ---\n{path.read_text(errors='replace')[-tail_chars:]}")
        return "\n".join(parts)

    def create_user(self, username: str, password: str, *roles: str) -> None:
        """Create a user holding every role in `roles`."""
        for role in roles:
            self.manage(
                "inkweb_create_user", "--username", username, "--password", password, "--role", role
            )

    def login(self, username: str, password: str) -> requests.Session:
        """Return a requests session signed in through the login page."""
        session = requests.Session()
        session.get(f"{self.base_url}/accounts/login/", timeout=10)
        response = session.post(
            f"{self.base_url}/accounts/login/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            timeout=10,
        )
        response.raise_for_status()
        if "sessionid" not in session.cookies:
            raise RuntimeError(f"login of {username} failed")
        session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
        return session

    def wait_for(self, check, *, timeout: float, description: str, interval: float = 0.5):
        """Call `check` until it returns a truthy value; raise with the logs on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            value = check()
            if value:
                return value
            time.sleep(interval)
        raise TimeoutError(f"{description} did not happen within {timeout} s\n{self.logs()}")

    # ---- tear-down ----------------------------------------------------------

    def stop(self) -> None:
        """Stop the processes, flush the Redis database and drop a PostgreSQL database."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        redis.Redis.from_url(LIVE_REDIS_URL).flushdb()
        if self._postgres_name and self._postgres_admin_url:
            import psycopg

            with psycopg.connect(self._postgres_admin_url, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{self._postgres_name}" WITH (FORCE)')
        shutil.rmtree(self.storage, ignore_errors=True)
