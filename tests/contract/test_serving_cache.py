"""What each worker keeps: decoded lists per version, and the watcher that lets a kept
cart skip Redis. Correctness first: one version per answer, changes served within the
stated bound, memory within its setting."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import httpx
import numpy as np
import pytest
import redis

from recsvc import model as lay
from recsvc.api.app import create_app
from recsvc.config import Settings
from recsvc.store import CustomerQuery, ModelStore
from recsvc.store import backend as storage
from tests.conftest import BOTH_BACKENDS, redis_server
from training.neighbours.base import Neighbours
from training.publish import ModelPayload, Publisher


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of this module's own: its tests count the commands the server
    received, which another module's client (a watcher left running) would add to."""
    with redis_server(tmp_path_factory.mktemp("redis")) as (url, _):
        yield url


CART = "/v1/recommendations/cart"


def _calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def variant(model: ModelPayload, score: float) -> ModelPayload:
    nb = Neighbours(model.neighbours.indices, np.full_like(model.neighbours.scores, score))
    return dataclasses.replace(model, neighbours=nb)


@contextmanager
def switching(publisher: Publisher, model: ModelPayload) -> Iterator[dict[str, float]]:
    """A version of ``model`` published every 10 ms in a thread while the block runs, each
    with its own score; yields version -> score (the first one published before)."""
    score_of: dict[str, float] = {}
    first = lay.new_version()
    score_of[first] = 0.5
    publisher.publish(variant(model, 0.5), first)
    stop = threading.Event()

    def publish_loop() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            version, score = lay.new_version(), 0.25 + (n % 7) / 10
            score_of[version] = score
            publisher.publish(variant(model, score), version)
            time.sleep(0.01)

    thread = threading.Thread(target=publish_loop)
    thread.start()
    try:
        yield score_of
    finally:
        stop.set()
        thread.join()


async def served_after(check: Callable[[], Awaitable[bool]], since: float) -> float:
    """Seconds from ``since`` until ``check`` holds (polled every 5 ms, for 5 s at most)."""
    for _ in range(1000):
        if await check():
            return time.monotonic() - since
        await asyncio.sleep(0.005)
    raise AssertionError("never served")


async def test_a_kept_cart_costs_no_redis_command_while_the_watcher_vouches(
    store_url: str, layout: lay.Layout, published: str, client: redis.Redis
) -> None:
    async with storage.async_client(store_url, layout.cluster, 5.0, blocking=False) as conn:
        store = ModelStore(conn, layout, refresh_interval_s=0.5)
        await store.refresh()
        first = await store.lists(["A1", "B1", "nope"], alternatives=True)  # fetches, keeps
        assert first.view.version == published and first.complements[2] is None
        before = _calls(client)
        for _ in range(5):
            got = await store.lists(["A1", "B1", "nope"], alternatives=True)
            assert got.view.version == published
        after = _calls(client)
        for command in ("evalsha", "get", "hmget", "mget"):
            assert after.get(command, 0) == before.get(command, 0), command
        # Once the watcher is two intervals late, a request reads the pointer itself.
        await asyncio.sleep(1.05)
        await store.lists(["A1"])
        assert _calls(client).get("get", 0) > after.get("get", 0)


async def test_a_switch_and_a_stock_change_reach_every_worker_within_two_intervals(
    settings: Settings, publisher: Publisher, shop_model: ModelPayload
) -> None:
    interval = 0.1
    watched = settings.model_copy(update={"refresh_interval_s": interval})
    workers = [create_app(watched), create_app(watched)]
    async with (
        workers[0].router.lifespan_context(workers[0]),
        workers[1].router.lifespan_context(workers[1]),
    ):
        clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=w), base_url="http://w")
            for w in workers
        ]
        body = {"items": ["M1", "T1"], "k": 3}
        first = publisher.publish(shop_model)
        await asyncio.sleep(2 * interval)
        for c in clients:
            assert (await c.post(CART, json=body)).json()["model_version"] == first
        newer = publisher.publish(shop_model)
        switched = time.monotonic()
        waits = []
        for c in clients:

            async def on_newer(c: httpx.AsyncClient = c) -> bool:
                return bool((await c.post(CART, json=body)).json()["model_version"] == newer)

            waits.append(await served_after(on_newer, switched))
        assert max(waits) <= 2 * interval + 0.15, waits
        # A stock change made through one worker: the other serves it within the bound.
        store = workers[0].state.store
        await store.admin.set_stock({"SP": {"available": False}})
        changed = time.monotonic()

        async def without_sp() -> bool:
            answer = (await clients[1].post(CART, json=body)).json()
            return "SP" not in {x["item_id"] for x in answer["cross_sell"]}

        assert await served_after(without_sp, changed) <= 2 * interval + 0.15
        for c in clients:
            await c.aclose()


@BOTH_BACKENDS
async def test_answers_never_mix_versions_while_versions_switch(
    store_url: str, layout: lay.Layout, block_model: ModelPayload, publisher: Publisher
) -> None:
    """Every version has its own score; each answer's lists must carry its view's."""
    async with storage.async_client(store_url, layout.cluster, 5.0, blocking=False) as conn:
        store = ModelStore(conn, layout, refresh_interval_s=0.02)
        watcher = asyncio.create_task(store.watch())
        seen = set()
        try:
            with switching(publisher, block_model) as score_of:
                deadline = time.monotonic() + 1.5
                while time.monotonic() < deadline:
                    got = await store.lists(["A1", "B2", "A3"])
                    scores = {float(x.scores[0]) for x in got.complements if x is not None}
                    assert scores == {np.float32(score_of[got.view.version])}, got.view.version
                    seen.add(got.view.version)
                    await asyncio.sleep(0)
        finally:
            watcher.cancel()
    assert len(seen) >= 3


@BOTH_BACKENDS
async def test_kept_lists_stay_within_their_byte_bound(
    store_url: str, layout: lay.Layout, publisher: Publisher, shop_model: ModelPayload
) -> None:
    publisher.publish(shop_model)
    async with storage.async_client(store_url, layout.cluster, 5.0, blocking=False) as conn:
        bound = 2_000
        store = ModelStore(conn, layout, list_cache_bytes=bound)
        for item in ["M1", "M2", "M3", "SP", "T1"] * 3:
            await store.lists([item], alternatives=True)
            for kept in store._lists.values():
                assert kept.complements.bytes + kept.alternatives.bytes <= bound


@BOTH_BACKENDS
async def test_stored_customers_never_mix_versions_while_versions_switch(
    store_url: str, layout: lay.Layout, block_model: ModelPayload, publisher: Publisher
) -> None:
    """The batch path (histories, then the lists this worker lacks) under switches every
    10 ms: each answer's lists carry the score of the version its view names."""
    customers = [CustomerQuery(c) for c in list(block_model.histories)[:20]]
    async with storage.async_client(store_url, layout.cluster, 5.0, blocking=False) as conn:
        store = ModelStore(conn, layout, refresh_interval_s=0)
        seen = set()
        with switching(publisher, block_model) as score_of:
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                view, fetched = await store.customers(customers)
                assert all(f.history is not None for f in fetched)
                scores = {float(x.scores[0]) for f in fetched for x in f.lists if x is not None}
                assert scores == {np.float32(score_of[view.version])}, view.version
                seen.add(view.version)
    assert len(seen) >= 3


async def test_a_batch_of_stored_customers_costs_one_script_call(
    store_url: str, layout: lay.Layout, published: str, block_model: ModelPayload
) -> None:
    """Histories of the whole batch in one call; with the lists kept, nothing else."""
    client = redis.Redis.from_url(store_url)  # one node: its command counts are all of them
    customers = [CustomerQuery(c) for c in block_model.histories]
    async with storage.async_client(store_url, layout.cluster, 5.0, blocking=False) as conn:
        store = ModelStore(conn, layout, refresh_interval_s=0)
        await store.customers(customers)  # lists decoded and kept
        before = _calls(client)
        view, fetched = await store.customers(customers)
        after = _calls(client)
    assert view.version == published and len(fetched) == len(customers) > 10
    spent = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    spent.pop("info", None)
    # One script call, and what it runs inside (commandstats counts those too): the
    # pointer, the A/B test, the epoch, the stored histories and the live events'
    # histories. No neighbour lists are read: all are kept.
    assert spent == {"evalsha": 1, "get": 3, "hmget": 2}, spent
