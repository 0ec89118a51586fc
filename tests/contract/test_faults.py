"""Fault injection against real processes: a trainer killed mid-publish, Redis stopped
under requests, a pool run dry, a version missing a key, a Redis at ``maxmemory``.

Each case is bounded in time (seconds); the longer soak is ``benchmarks/soak.py``.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import redis
from pydantic import SecretStr
from redis.exceptions import RedisError

from recsvc import model as lay
from recsvc.api.app import create_app
from recsvc.config import Settings
from recsvc.errors import StoreUnavailableError
from recsvc.store import backend as storage
from tests.conftest import BOTH_BACKENDS, in_process, redis_server
from training.errors import TrainingError
from training.publish import ModelPayload, Publisher

CART = "/v1/recommendations/cart"
KILLS = int(os.environ.get("RECSVC_FAULT_KILLS", "4"))
"""Trainer kills per run; raise it for a longer fault run (the note quotes 30)."""
ADMIN_TOKEN = "a-test-admin-token-0123456789"


@asynccontextmanager
async def service(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with in_process(app, http_timeout=10) as c:
        yield c


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis of the test's own, to stop, fill or reconfigure without touching others."""
    with redis_server(tmp_path) as server:
        yield server


def versions_in(client: redis.Redis, layout: lay.Layout) -> set[str | None]:
    return {
        layout.version_of(bytes(k).decode())
        for k in client.scan_iter(match=layout.model_pattern, count=1000)
    }


# -- the trainer killed while it publishes ---------------------------------------------------


def test_a_trainer_killed_during_publish_changes_nothing_and_its_keys_are_collected(
    redis_url: str, client: redis.Redis, layout: lay.Layout
) -> None:
    """SIGKILL at seeded random points of a publish: the live version answers as before,
    the lock frees itself, and the next publish collects what the dead run wrote."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def run(score: float) -> subprocess.Popen[str]:
        args = [redis_url, layout.prefix, "20000", "60000", str(score)]
        return subprocess.Popen(
            [sys.executable, "-m", "tests.publish_worker", *args],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    first = run(0.5)
    out, _ = first.communicate(timeout=120)
    live = out.strip().splitlines()[-1].split()[-1]
    fetch = client.register_script(lay.FETCH_SCRIPT)

    def answer() -> list[bytes]:
        while True:
            believed = (client.get(layout.live) or b"").decode()  # type: ignore[union-attr]
            keys, args = layout.fetch_args(believed, ["item-000001", "item-019999"])
            got = fetch(keys=keys, args=args)
            if got[5]:
                return list(got[2])

    before = answer()
    rng = random.Random(20261124)
    killed_at: list[str] = []
    for kill in range(KILLS):
        proc = run(0.25)
        assert proc.stdout is not None
        target = rng.randrange(1, 14)  # a progress line: 10 item batches, then customers
        seen = 0
        for line in proc.stdout:
            if line.startswith("progress"):
                seen += 1
                if seen == target:
                    time.sleep(rng.uniform(0, 0.02))
                    proc.send_signal(signal.SIGKILL)
                    killed_at.append(line.strip())
                    break
        proc.wait(timeout=30)
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL, "the publish ended before its kill"
        assert client.get(layout.live) == live.encode()
        assert answer() == before
        left = versions_in(client, layout)
        assert live in left and len(left) == kill + 2  # the live one and each dead run's
        client.delete(layout.lock)  # its 30 s expiry, skipped to keep the test short
    assert len(killed_at) == KILLS
    print(f"trainer kills survived: {KILLS}, at {killed_at}")
    finished = run(0.75)
    out, _ = finished.communicate(timeout=120)
    newest = out.strip().splitlines()[-1].split()[-1]
    # Only the new live version and the one before it are left.
    assert versions_in(client, layout) == {newest, live}
    assert client.get(layout.previous) == live.encode()


# -- Redis stopped, and a pool run dry ---------------------------------------------------------


async def test_every_backend_call_speaks_the_services_errors_when_redis_is_down(
    own_redis: tuple[str, subprocess.Popen[bytes]], layout: lay.Layout
) -> None:
    """The backend is the one place Redis's errors are translated: with the server gone,
    every command of the interface raises StoreUnavailableError, never a RedisError."""
    url, proc = own_redis
    client = storage.async_client(url, False, 0.2, blocking=False)
    backend = storage.async_storage(client, layout)
    await backend.ping()  # up: no error
    proc.send_signal(signal.SIGSTOP)  # accepts nothing, answers nothing
    try:
        calls = {
            "ping": backend.ping(),
            "get": backend.get(layout.live),
            "mget": backend.mget([layout.live, layout.previous]),
            "hmget_key": backend.hmget_key(layout.catalog_items, ["A1"]),
            "hscan_key": backend.hscan_key(layout.event_histories, 0, 10),
            "xrevrange": backend.xrevrange(layout.audit, 1),
            "batch": backend.batch(lambda pipe: pipe.get(layout.live), atomic=True),
            "fetch": backend.fetch(layout.live, "v", ["A1"], True),
            "customers": backend.customers(layout.live, "v", ["c1"]),
            "hmget": backend.hmget("v", "neighbours", ["A1"]),
            "hset": backend.hset("v", "customers", {"c1": b"[]"}),
            "memory": backend.memory(),
            "inspect": backend.inspect([layout.live]),
        }
        for name, call in calls.items():
            with pytest.raises(StoreUnavailableError) as raised:
                await call
            assert not isinstance(raised.value, RedisError), name
            assert isinstance(raised.value.__cause__, RedisError), name
        with pytest.raises(StoreUnavailableError):
            async for _ in backend.hscan("v", "customers"):
                pass
    finally:
        proc.send_signal(signal.SIGCONT)
        await storage.close(client)


async def test_requests_while_redis_is_stopped_end_within_the_timeout_and_recover(
    own_redis: tuple[str, subprocess.Popen[bytes]],
    layout: lay.Layout,
    block_model: ModelPayload,
    tmp_path: Path,
) -> None:
    url, proc = own_redis
    Publisher(redis.Redis.from_url(url), layout).publish(block_model)
    timeout = 0.5
    settings = Settings(
        redis_url=url, key_prefix=layout.prefix, data_dir=tmp_path, redis_timeout_s=timeout
    )
    async with service(settings) as api:
        assert (await api.post(CART, json={"items": ["A1"]})).status_code == 200

        async def timed() -> tuple[float, httpx.Response]:
            start = time.monotonic()
            r = await api.post(CART, json={"items": ["A1", "B1"]})
            return time.monotonic() - start, r

        proc.send_signal(signal.SIGSTOP)
        try:
            # With the watcher on (the default), kept lists answer for two intervals; then
            # the watcher is late and every request reads Redis itself.
            await asyncio.sleep(2 * settings.refresh_interval_s + 0.1)
            results = await asyncio.gather(*(timed() for _ in range(8)))
            live = await api.get("/healthz")
        finally:
            proc.send_signal(signal.SIGCONT)
        for elapsed, r in results:
            assert elapsed < timeout + 1.0, elapsed
            assert r.status_code == 503
            assert r.json()["error"]["code"] in ("store_unavailable", "overloaded")
        assert live.status_code == 200  # liveness does no I/O
        start = time.monotonic()
        while (await api.post(CART, json={"items": ["A1"]})).status_code != 200:
            assert time.monotonic() - start < 5, "no recovery after Redis came back"
            await asyncio.sleep(0.001)
        recovered = time.monotonic() - start
        print(
            f"redis stopped: {len(results)} requests ended in "
            f"{min(e for e, _ in results) * 1000:.0f}-{max(e for e, _ in results) * 1000:.0f} ms, "
            f"all 503; first 200 {recovered * 1000:.1f} ms after SIGCONT"
        )
        assert (await api.get("/readyz")).status_code == 200


async def test_a_pool_run_dry_is_overload_not_an_outage(
    redis_url: str, layout: lay.Layout, published: str, tmp_path: Path
) -> None:
    settings = Settings(
        redis_url=redis_url,
        key_prefix=layout.prefix,
        data_dir=tmp_path,
        redis_timeout_s=0.3,
        redis_max_connections=1,
        refresh_interval_s=0,  # every cart reads Redis, so the pool is what they wait for
    )
    pauser = redis.Redis.from_url(redis_url)
    async with service(settings) as api:
        assert (await api.post(CART, json={"items": ["A1"]})).status_code == 200
        pauser.client_pause(800, all=True)
        try:
            replies = await asyncio.gather(
                *(api.post(CART, json={"items": ["A1"]}) for _ in range(5))
            )
        finally:
            pauser.client_unpause()
        codes = [r.json()["error"]["code"] for r in replies]
        assert all(r.status_code == 503 for r in replies)
        assert "overloaded" in codes, codes
        waited = [r for r in replies if r.json()["error"]["code"] == "overloaded"]
        assert all(r.headers["retry-after"] == "1" for r in waited)
        metrics = (await api.get("/metrics")).text
        assert f"recsvc_redis_pool_timeouts_total {float(len(waited))}" in metrics
        assert (await api.post(CART, json={"items": ["A1"]})).status_code == 200
    pauser.close()


# -- a version missing a key ------------------------------------------------------------------


@BOTH_BACKENDS
async def test_a_live_version_missing_a_key_is_reported_and_rolled_back(
    settings: Settings,
    publisher: Publisher,
    shop_model: ModelPayload,
    client: redis.Redis,
    layout: lay.Layout,
) -> None:
    older = publisher.publish(shop_model)
    live = publisher.publish(shop_model)
    # What allkeys-lru does to a cold key (on a cluster, one bucket of the part).
    assert client.delete(layout.field_key(live, "alternatives", "M1")) == 1
    async with service(settings) as api:
        ready = await api.get("/readyz")
        assert ready.status_code == 503
        error = ready.json()["error"]
        assert error["code"] == "model_incomplete"
        assert re.search(r"alternatives( bucket \d+)? is missing", error["message"])
        for path in ("/v1/model", CART):
            r = await (api.get(path) if path != CART else api.post(path, json={"items": ["M1"]}))
            assert r.status_code == 503 and r.json()["error"]["code"] == "model_incomplete"
        assert (await api.get("/healthz")).status_code == 200
        assert (await api.get("/metrics")).status_code == 200
        # The previous version is complete: rolling back to it restores service.
        assert publisher.rollback() == older
        assert (await api.get("/readyz")).json()["model_version"] == older
        r = await api.post(CART, json={"items": ["M1"]})
        assert r.status_code == 200 and r.json()["model_version"] == older
        # ... and back to the broken one is refused.
        with pytest.raises(TrainingError, match="INCOMPLETE"):
            publisher.rollback()
        assert (await api.get("/readyz")).status_code == 200


# -- Redis at maxmemory ---------------------------------------------------------------------------


async def test_a_full_noeviction_redis_still_serves_and_says_why_writes_fail(
    own_redis: tuple[str, subprocess.Popen[bytes]],
    layout: lay.Layout,
    shop_model: ModelPayload,
    tmp_path: Path,
) -> None:
    url, _ = own_redis
    direct = redis.Redis.from_url(url)
    Publisher(direct, layout).publish(shop_model)
    direct.config_set("maxmemory-policy", "noeviction")
    direct.config_set("maxmemory", str(int(direct.info("memory")["used_memory"]) // 2))
    settings = Settings(
        redis_url=url,
        key_prefix=layout.prefix,
        data_dir=tmp_path,
        admin_token=SecretStr(ADMIN_TOKEN),
    )
    async with service(settings) as api:  # a newly started service, Redis already full
        ready = await api.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert any("at maxmemory" in w for w in ready.json()["warnings"])
        assert (await api.post(CART, json={"items": ["M1"]})).status_code == 200
        r = await api.patch(
            "/v1/admin/items/M2",
            json={"available": False},
            headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert r.status_code == 503 and r.json()["error"]["code"] == "store_full"
    direct.config_set("maxmemory", "0")
    direct.config_set("maxmemory-policy", "allkeys-lru")
    async with service(settings) as api:
        warnings = (await api.get("/readyz")).json()["warnings"]
        assert any("allkeys-lru" in w for w in warnings)
    direct.close()
