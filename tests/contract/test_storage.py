"""One contract, two backends: publish, read, switch, roll back, lock, collect and change
stock on a single Redis node and on a real 3-master Redis Cluster.

Every test here runs twice (``backend``): the trainer writes through ``Publisher`` and
the service reads through ``ModelStore`` (and over HTTP), exactly as in production, with
only ``Settings.redis_cluster`` telling them apart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import redis
import redis.cluster
from pydantic import SecretStr
from redis.crc import key_slot

from recsvc import model as lay
from recsvc.api.app import create_app
from recsvc.config import Settings
from recsvc.store import CustomerQuery, ModelStore, readiness
from recsvc.store import backend as storage
from tests.conftest import GROUP_A, GROUP_B, in_process
from training.errors import LockedError, NoModelError, TrainingError
from training.neighbours.base import Neighbours
from training.publish import ModelPayload, Publisher


@dataclass
class Backend:
    name: str
    settings: Settings
    client: storage.SyncClient
    publisher: Publisher
    master_urls: list[str]

    @property
    def layout(self) -> lay.Layout:
        return self.publisher.layout

    def masters(self) -> list[redis.Redis]:
        """A plain client on each master (one on a single node)."""
        return [redis.Redis.from_url(u) for u in self.master_urls]

    def version_keys(self, version: str) -> list[bytes]:
        """Every key of ``version``, found on every master."""
        found = []
        for node in self.masters():
            with node:
                for key in node.scan_iter(match=self.layout.model_pattern, count=1000):
                    if self.layout.version_of(bytes(key).decode()) == version:
                        found.append(bytes(key))
        return found

    @asynccontextmanager
    async def store(self) -> AsyncIterator[ModelStore]:
        client = storage.async_client(
            str(self.settings.redis_url), self.settings.redis_cluster, 5.0, blocking=False
        )
        try:
            yield ModelStore(client, self.layout)
        finally:
            await storage.close(client)


@pytest.fixture(params=["single", "cluster"])
def backend(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> Iterator[Backend]:
    cluster = request.param == "cluster"
    masters = request.getfixturevalue("cluster_urls") if cluster else [redis_url]
    url = masters[0]
    settings = Settings(
        redis_url=url,
        redis_cluster=cluster,
        key_prefix=f"t-{uuid.uuid4().hex[:10]}",
        data_dir=tmp_path,
        refresh_interval_s=0,
    )
    client = storage.sync_client(url, cluster)
    try:
        yield Backend(request.param, settings, client, Publisher(client, settings.layout), masters)
    finally:
        storage.close_sync(client)


def variant(model: ModelPayload, score: float) -> ModelPayload:
    """``model`` with every complement weighing ``score``: which version an answer came
    from, read off its lists."""
    nb = Neighbours(model.neighbours.indices, np.full_like(model.neighbours.scores, score))
    return dataclasses.replace(model, neighbours=nb)


def first_neighbours(got_view_items: tuple[str, ...], indices: np.ndarray) -> list[str]:
    return [got_view_items[i] for i in indices.tolist()]


# -- publish and read ---------------------------------------------------------------------


async def test_what_the_trainer_publishes_the_service_reads(
    backend: Backend, block_model: ModelPayload
) -> None:
    version = backend.publisher.publish(block_model)
    async with backend.store() as store:
        got = await store.lists(["A1", "B1", "nope"], alternatives=True)
    assert got.view.version == version
    a1, b1, nope = got.complements
    assert a1 is not None and b1 is not None and nope is None
    assert first_neighbours(got.view.item_ids, a1.indices)[0] == "A2"
    assert set(first_neighbours(got.view.item_ids, a1.positive.indices)) <= set(GROUP_A)  # type: ignore[union-attr]
    assert set(first_neighbours(got.view.item_ids, b1.positive.indices)) <= set(GROUP_B)  # type: ignore[union-attr]
    # Readiness checks every manifest key, on every master.
    async with backend.store() as store:
        health = await readiness(store)
    assert health.view.version == version


async def test_a_cart_over_http_is_answered_from_either_backend(
    backend: Backend, block_model: ModelPayload
) -> None:
    version = backend.publisher.publish(block_model)
    app = create_app(backend.settings)
    async with in_process(app) as api:
        ready = await api.get("/readyz")
        assert ready.status_code == 200, ready.text
        answer = await api.post("/v1/recommendations/cart", json={"items": ["A1", "A2"], "k": 3})
        assert answer.status_code == 200, answer.text
        body = answer.json()
    assert body["model_version"] == version
    suggested = [x["item_id"] for x in body["cross_sell"]]
    assert len(suggested) == 3 and set(suggested) <= set(GROUP_A) - {"A1", "A2"}


async def test_stored_histories_are_read_and_erased(
    backend: Backend, shop_model: ModelPayload
) -> None:
    backend.publisher.publish(shop_model)
    async with backend.store() as store:
        view, (found, unknown) = await store.customers(
            [CustomerQuery("s1"), CustomerQuery("nobody")]
        )
        assert found.history is not None and unknown.history is None
        assert set(found.history.item_ids) >= {"T1"}
        assert all(lst is not None for lst in found.lists)
        held = await store.admin.erase_customers(["s1"], actor="test")
        assert held == [view.version]
        _, (erased,) = await store.customers([CustomerQuery("s1")])
        assert erased.history is not None and erased.history.item_ids == []
        # Every stored customer is exported, from every bucket.
        seen = [c async for batch in store.scan_customers(view) for c, _ in batch]
    assert len(seen) == len(shop_model.histories) and len(set(seen)) == len(seen)
    async with backend.store() as store:
        assert await store.verify(view.version, view.meta) == []  # erasure kept the manifest


# -- switch, rollback, lock, collection ---------------------------------------------------


async def test_answers_never_mix_versions_while_versions_switch(
    backend: Backend, block_model: ModelPayload
) -> None:
    backend.publisher.publish(variant(block_model, 0.5))
    stop = threading.Event()
    published = [0]

    def publish_loop() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            backend.publisher.publish(variant(block_model, 0.25 + (n % 7) / 10))
            published[0] = n

    thread = threading.Thread(target=publish_loop)
    thread.start()
    versions = set()
    try:
        async with backend.store() as store:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline or published[0] < 3:
                got = await store.lists(["A1", "B1", "A3", "B4"])
                scores = {float(lst.scores[0]) for lst in got.complements if lst is not None}
                assert len(scores) == 1, (got.view.version, scores)  # one version per answer
                versions.add(got.view.version)
                store._lists.clear()  # read every list again, every time
                await asyncio.sleep(0)
    finally:
        stop.set()
        thread.join()
    assert len(versions) >= 2, versions


def test_rollback_swaps_live_and_previous_and_refuses_an_incomplete_one(
    backend: Backend, block_model: ModelPayload
) -> None:
    pub = backend.publisher
    first = pub.publish(variant(block_model, 0.5))
    second = pub.publish(variant(block_model, 0.75))
    assert pub.rollback() == first
    assert (pub.live_version(), pub.previous_version()) == (first, second)
    assert pub.rollback() == second  # a rollback is undone by rolling back again
    # A key of the previous version goes (an evicting Redis, a hand): rollback refuses.
    lists_key = backend.layout.field_key(first, "neighbours", "A1")
    backend.client.delete(lists_key)
    with pytest.raises(TrainingError, match="INCOMPLETE"):
        pub.rollback()
    assert pub.live_version() == second


def test_the_lock_keeps_a_second_trainer_out_and_a_lost_lock_switches_nothing(
    backend: Backend, block_model: ModelPayload
) -> None:
    pub = backend.publisher
    live = pub.publish(block_model)
    other = Publisher(backend.client, backend.layout)
    with pub.hold() as token:
        with pytest.raises(LockedError, match="another trainer holds the lock"):
            other.publish(block_model)
        version = lay.new_version()
        pub.write(block_model, version, token)
        backend.client.delete(backend.layout.lock)  # expired, say
        with pytest.raises(LockedError, match="LOCKLOST"):
            pub.switch(version, token)
    assert pub.live_version() == live


def test_an_incomplete_version_is_never_switched_live(
    backend: Backend, block_model: ModelPayload
) -> None:
    pub = backend.publisher
    live = pub.publish(block_model)
    with pub.hold() as token:
        version = lay.new_version()
        pub.write(block_model, version, token)
        backend.client.hdel(backend.layout.field_key(version, "neighbours", "B2"), "B2")
        with pytest.raises(TrainingError, match="INCOMPLETE"):
            pub.switch(version, token)
    assert pub.live_version() == live


def test_collection_keeps_live_and_previous_and_finds_a_dead_runs_keys(
    backend: Backend, block_model: ModelPayload
) -> None:
    pub = backend.publisher
    first = pub.publish(block_model)
    # A trainer killed mid-write left some buckets of a version that never went live.
    dead = "dead-run"
    for item in ("A1", "B1", "A5"):
        backend.client.hset(backend.layout.field_key(dead, "neighbours", item), item, b"")
    second = pub.publish(block_model)
    third = pub.publish(block_model)
    assert backend.version_keys(first) == [] and backend.version_keys(dead) == []
    assert backend.version_keys(second) and backend.version_keys(third)
    assert pub.previous_version() == second


def test_an_ab_test_starts_and_is_promoted_on_either_backend(
    backend: Backend, block_model: ModelPayload
) -> None:
    pub = backend.publisher
    live = pub.publish(block_model)
    candidate = pub.publish(variant(block_model, 0.75), ab_share=0.5)
    assert (pub.live_version(), pub.candidate_version()) == (live, candidate)
    assert pub.promote() == candidate
    assert (pub.live_version(), pub.previous_version()) == (candidate, live)
    with pytest.raises(NoModelError):
        pub.abort()


# -- live order events -----------------------------------------------------------------


async def test_an_order_event_reaches_the_next_customer_answer_and_counts_once(
    backend: Backend, block_model: ModelPayload
) -> None:
    backend.publisher.publish(block_model)
    token = "ingest-token-0123456789abc"
    app = create_app(backend.settings.model_copy(update={"ingest_token": SecretStr(token)}))
    event = {
        "order_id": "o-1",
        "customer_id": "c0-1",
        "items": [{"item_id": "B1", "quantity": 1, "price": 2.5}],
        "purchased_at": "2024-03-20T10:00:00Z",
    }
    auth = {"authorization": f"Bearer {token}"}
    async with in_process(app) as api:
        first = await api.post("/v1/events/orders", json=event, headers=auth)
        again = await api.post("/v1/events/orders", json=event, headers=auth)
        answer = await api.get("/v1/customers/c0-1/recommendations", params={"k": 4})
    assert first.status_code == 202 and first.json()["duplicate"] is False
    assert again.json()["duplicate"] is True
    got = answer.json()["recommendations"]
    assert "B1" not in {s["item_id"] for s in got}  # bought now: excluded
    assert any(s["item_id"] in GROUP_B for s in got)  # and its complements suggested
    assert backend.client.xlen(backend.layout.events) == 1


# -- live stock changes -------------------------------------------------------------------


async def test_a_stock_change_is_served_by_the_next_answer(
    backend: Backend, block_model: ModelPayload
) -> None:
    backend.publisher.publish(block_model)
    app = create_app(backend.settings)
    body = {"items": ["A1"], "k": 4}
    async with in_process(app) as api:
        before = (await api.post("/v1/recommendations/cart", json=body)).json()
        assert "A2" in [x["item_id"] for x in before["cross_sell"]]
        store: ModelStore = app.state.store
        version, unknown = await store.admin.set_stock({"A2": {"available": False}, "zz": {}})
        assert version == before["model_version"] and unknown == ["zz"]
        after = (await api.post("/v1/recommendations/cart", json=body)).json()
    assert "A2" not in [x["item_id"] for x in after["cross_sell"]]


# -- the cluster's own promises ----------------------------------------------------------


async def test_a_cart_on_a_cluster_costs_one_script_and_one_read_per_bucket(
    cluster_urls: list[str], block_model: ModelPayload
) -> None:
    """The pointer's script on its master, and the buckets the cart needs read beside it
    (one pipeline per master, sent at once); once kept, lists cost no read at all."""
    layout = lay.Layout.for_cluster(f"t-{uuid.uuid4().hex[:10]}")
    client = storage.sync_client(cluster_urls[0], cluster=True)
    masters = [redis.Redis.from_url(u) for u in cluster_urls]

    def calls(command: str) -> int:
        total = 0
        for m in masters:
            stats = m.info("commandstats")
            total += int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))
        return total

    try:
        version = Publisher(client, layout).publish(block_model)
        cart = ["A1", "A2", "B1", "B2"]
        buckets = {layout.field_key(version, "neighbours", i) for i in cart}
        conn = storage.async_client(cluster_urls[0], True, 5.0)
        try:
            store = ModelStore(conn, layout)
            await store.lists(["A3", "A4", "A5", "B3", "B4", "B5"])  # learns the version, connects
            before = {c: calls(c) for c in ("evalsha", "hmget", "get")}
            got = await store.lists(cart)
            assert got.view.version == version and all(got.complements)
            spent = {c: calls(c) - before[c] for c in before}
            # (The three GETs are the script's own: pointer, A/B test, stock epoch.)
            assert spent == {"evalsha": 1, "hmget": len(buckets), "get": 3}, spent
            before = {c: calls(c) for c in ("evalsha", "hmget", "get")}
            await store.lists(cart)
            spent = {c: calls(c) - before[c] for c in before}
            assert spent == {"evalsha": 1, "hmget": 0, "get": 3}, spent  # kept: the pointer only
        finally:
            await storage.close(conn)
    finally:
        storage.close_sync(client)
        for m in masters:
            m.close()


def test_a_version_spreads_over_every_master_and_its_pointers_share_one_slot(
    cluster_urls: list[str], block_model: ModelPayload, shop_model: ModelPayload, tmp_path: Path
) -> None:
    layout = lay.Layout.for_cluster(f"t-{uuid.uuid4().hex[:10]}")
    client = storage.sync_client(cluster_urls[0], cluster=True)
    try:
        pub = Publisher(client, layout)
        version = pub.publish(shop_model)
        per_master = []
        for url in cluster_urls:
            with redis.Redis.from_url(url) as conn:
                keys = [
                    k for k in conn.scan_iter(match=layout.model_pattern, count=1000)
                    if layout.version_of(bytes(k).decode()) == version
                ]  # fmt: skip
            per_master.append(len(keys))
        assert len(per_master) == 3 and min(per_master) > 0, per_master
        pointer_slot = key_slot(layout.live.encode())
        for key in (layout.lock, layout.previous, layout.meta(version), layout.stock(version)):
            assert key_slot(key.encode()) == pointer_slot
        meta = pub.meta(version)
        assert meta is not None
        buckets = [e for e in lay.manifest_of(meta) if e.bucket is not None]
        assert {e.part for e in buckets} == {"neighbours", "alternatives", "customers"}
        assert sum(e.size or 0 for e in buckets if e.part == "customers") == len(
            shop_model.histories
        )
    finally:
        storage.close_sync(client)


def test_recsvc_cluster_starts_a_local_cluster_once_and_stops_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from recsvc.cli.main import main as recsvc_main
    from tests.conftest import cluster_port_free, free_cluster_port

    port = free_cluster_port()
    while not all(cluster_port_free(port + n) for n in range(3)):
        port = free_cluster_port()
    args = ["cluster", "start", "--port", str(port), "--dir", str(tmp_path)]
    try:
        assert recsvc_main(args) == 0
        assert recsvc_main(args) == 0  # running already: found, not started twice
        out = capsys.readouterr().out
        assert f"REDIS_URL=redis://127.0.0.1:{port}" in out
        client = redis.cluster.RedisCluster(host="127.0.0.1", port=port + 1)
        try:
            assert len(client.get_primaries()) == 3  # type: ignore[no-untyped-call]
            client.set("{t}k", "v")
            assert client.get("{t}k") == b"v"
        finally:
            storage.close_sync(client)
    finally:
        assert recsvc_main(["cluster", "stop", "--port", str(port)]) == 0
    assert "stopped 3 node(s)" in capsys.readouterr().out
    assert recsvc_main(["cluster", "start", "--port", "60000"]) == 2  # no room for bus ports
