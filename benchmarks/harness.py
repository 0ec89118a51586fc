"""What every serving benchmark starts with: its own redis-server, the service's
environment, a wait for readiness, and the published model's ids."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis

from recsvc.model import Layout, decode_json
from recsvc.store.embedded import redis_server_binary


@contextmanager
def redis_server(port: int, name: str, cores: str | None = None) -> Iterator[Path]:
    """A throw-away redis-server on ``port``; yields its working directory. With
    ``cores`` (``taskset -c`` syntax) it is pinned there, off the service's core: in a
    deployment Redis has a machine of its own, and an unpinned server shares the
    service's core only some of the time, which is noise, not the service's cost."""
    work = Path(tempfile.mkdtemp(prefix=f"recsvc-{name}-"))
    pinned = [] if cores is None else ["taskset", "-c", cores]
    server = subprocess.Popen(
        [*pinned, redis_server_binary(), "--port", str(port), "--save", "", "--appendonly",
         "no", "--dir", str(work)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()
        yield work
    finally:
        server.terminate()
        server.wait(timeout=10)


def service_env(redis_port: int, prefix: str, **settings: str) -> dict[str, str]:
    """The environment of a trainer or service on that Redis (``RECSVC_*`` extras)."""
    extra = {f"RECSVC_{k.upper()}": v for k, v in settings.items()}
    return {
        **os.environ,
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "RECSVC_KEY_PREFIX": prefix,
        **extra,
    }


def wait_ready(base: str, tries: int = 100) -> None:
    for _ in range(tries):
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{base} never became ready")


def live_model(redis_port: int, prefix: str) -> tuple[redis.Redis, Layout, str, list[Any]]:
    """A client, the layout, the live version and its item ids."""
    client = redis.Redis(port=redis_port)
    layout = Layout(prefix)
    version = client.get(layout.live).decode()  # type: ignore[union-attr]
    items = decode_json(client.get(layout.items(version)))  # type: ignore[arg-type]
    return client, layout, version, list(items)
