"""Publishing: whole versions, one atomic switch, rollback, the lock, leftovers collected."""

from __future__ import annotations

import dataclasses
import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import redis

from recsvc import model as lay
from tests.conftest import BOTH_BACKENDS, redis_server
from training.errors import LockedError, NoModelError, StoreFullError, TrainingError
from training.neighbours.base import Neighbours
from training.publish import ModelPayload, Publisher


def variant(model: ModelPayload, score: float) -> ModelPayload:
    """The same model with every neighbour score set to ``score``: a version fingerprint."""
    nb = Neighbours(model.neighbours.indices, np.full_like(model.neighbours.scores, score))
    return dataclasses.replace(model, neighbours=nb)


@BOTH_BACKENDS
def test_publish_makes_the_version_live_and_keeps_one_previous(
    publisher: Publisher, block_model: ModelPayload, client: redis.Redis, layout: lay.Layout
) -> None:
    v1 = publisher.publish(block_model)
    assert publisher.live_version() == v1 and publisher.previous_version() is None
    v2 = publisher.publish(block_model)
    v3 = publisher.publish(block_model)
    assert publisher.live_version() == v3 and publisher.previous_version() == v2
    # Older versions are deleted whole.
    assert client.exists(*layout.model_keys(v1)) == 0
    assert versions_in(client, layout) == {v2, v3}


def versions_in(client: redis.Redis, layout: lay.Layout) -> set[str | None]:
    """Every version that owns a key, found the way the publisher finds them."""
    return {
        layout.version_of(bytes(k).decode())
        for k in client.scan_iter(match=layout.model_pattern, count=1000)
    }


@BOTH_BACKENDS
def test_rollback_swaps_live_and_previous(publisher: Publisher, block_model: ModelPayload) -> None:
    v1 = publisher.publish(block_model)
    v2 = publisher.publish(block_model)
    assert publisher.rollback() == v1
    assert (publisher.live_version(), publisher.previous_version()) == (v1, v2)
    assert publisher.rollback() == v2  # and back again


@BOTH_BACKENDS
def test_rollback_without_previous_is_refused(
    publisher: Publisher, block_model: ModelPayload
) -> None:
    with pytest.raises(NoModelError, match="no previous"):
        publisher.rollback()
    publisher.publish(block_model)
    with pytest.raises(NoModelError, match="no previous"):
        publisher.rollback()


def test_a_reader_during_publishing_never_sees_a_mixed_model(
    publisher: Publisher, block_model: ModelPayload, redis_url: str, layout: lay.Layout
) -> None:
    """Readers fetch through the service's script while versions are switched under them."""
    publisher.publish(variant(block_model, 0.25))
    reader = redis.Redis.from_url(redis_url)
    fetch = reader.register_script(lay.FETCH_SCRIPT)
    stop = threading.Event()
    seen: set[tuple[float, ...]] = set()
    errors: list[str] = []

    def read() -> None:
        while not stop.is_set():
            believed = (reader.get(layout.live) or b"").decode()  # type: ignore[union-attr]
            keys, args = layout.fetch_args(believed, ["A1", "B1", "A3"])
            version, _, blobs, _, _, current = fetch(keys=keys, args=args)
            if not current:
                continue  # switched between the two reads: the script said so, ask again
            if any(b is None for b in blobs):
                errors.append(f"missing list in {version!r}")
                continue
            fingerprint = tuple(sorted({float(lay.decode_pairs(b)[1][0]) for b in blobs}))
            seen.add(fingerprint)

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for score in (0.5, 0.75, 0.25, 0.5):
            publisher.publish(variant(block_model, score))
    finally:
        stop.set()
        thread.join()
        reader.close()
    assert not errors
    # Every read saw exactly one version's lists, never two at once.
    assert all(len(f) == 1 for f in seen), seen
    assert len(seen) >= 2


@BOTH_BACKENDS
def test_a_run_that_dies_before_the_switch_leaves_the_live_model(
    publisher: Publisher, block_model: ModelPayload, client: redis.Redis, layout: lay.Layout
) -> None:
    live = publisher.publish(block_model)
    with publisher.hold() as token:
        publisher.write(block_model, "dead-run", token)  # ... and then the process dies
    assert publisher.live_version() == live
    # The next successful publish removes the leftovers.
    publisher.publish(block_model)
    assert client.exists(*layout.model_keys("dead-run")) == 0


@BOTH_BACKENDS
def test_a_second_trainer_is_locked_out(
    publisher: Publisher, block_model: ModelPayload, client: redis.Redis, layout: lay.Layout
) -> None:
    other = Publisher(client, layout)
    with other.hold(), pytest.raises(LockedError, match="another trainer"):
        publisher.publish(block_model)
    assert publisher.live_version() is None
    publisher.publish(block_model)  # the lock was released
    assert publisher.live_version() is not None


@BOTH_BACKENDS
def test_the_lock_expires_when_its_holder_dies(
    client: redis.Redis, layout: lay.Layout, block_model: ModelPayload
) -> None:
    short = Publisher(client, layout, lock_ttl_ms=200)
    client.set(layout.lock, "a-dead-trainer", px=200)
    with pytest.raises(LockedError):
        short.publish(block_model)
    time.sleep(0.3)
    assert short.publish(block_model) == short.live_version()


@BOTH_BACKENDS
def test_a_trainer_that_lost_its_lock_cannot_switch(
    publisher: Publisher, block_model: ModelPayload, client: redis.Redis, layout: lay.Layout
) -> None:
    live = publisher.publish(block_model)
    with publisher.hold() as token:
        publisher.write(block_model, "stalled", token)
        client.set(layout.lock, "someone-else")  # our lock expired; another took it
        with pytest.raises(LockedError, match="lock lost"):
            publisher.switch("stalled", token)
    assert publisher.live_version() == live
    client.delete(layout.lock)


@BOTH_BACKENDS
def test_a_version_without_metadata_is_never_switched_to(
    publisher: Publisher, client: redis.Redis, layout: lay.Layout
) -> None:
    with publisher.hold() as token, pytest.raises(TrainingError, match="no metadata"):
        publisher.switch("never-written", token)
    assert publisher.live_version() is None


@BOTH_BACKENDS
@pytest.mark.parametrize("part", ["items", "neighbours", "alternatives", "customers", "catalog"])
def test_rollback_to_a_version_missing_a_key_is_refused(
    publisher: Publisher,
    shop_model: ModelPayload,
    client: redis.Redis,
    layout: lay.Layout,
    part: str,
) -> None:
    """What an evicting Redis does to an old version: rollback must not make it live."""
    v1 = publisher.publish(shop_model)
    v2 = publisher.publish(shop_model)
    # On a cluster a bucketed part is many hashes: the one holding a known member goes.
    member = next(iter(shop_model.histories)) if part == "customers" else shop_model.item_ids[0]
    key = (
        layout.field_key(v1, part, member) if part in lay.BUCKETED_PARTS else layout.part(v1, part)
    )
    assert client.delete(key) == 1
    with pytest.raises(TrainingError, match=rf"{part}( bucket \d+)? is missing"):
        publisher.rollback()
    assert (publisher.live_version(), publisher.previous_version()) == (v2, v1)


@BOTH_BACKENDS
def test_a_hash_with_fewer_fields_than_written_is_never_switched_to(
    publisher: Publisher, shop_model: ModelPayload, client: redis.Redis, layout: lay.Layout
) -> None:
    live = publisher.publish(shop_model)
    with publisher.hold() as token:
        publisher.write(shop_model, "partial", token)
        first = shop_model.item_ids[0]
        client.hdel(layout.field_key("partial", "neighbours", first), first)
        # On a cluster the field's bucket may have held only it: then the bucket is gone.
        shrunk = r"neighbours( bucket \d+)? (has size|is missing)"
        with pytest.raises(
            TrainingError, match=shrunk if layout.cluster else "neighbours has size"
        ):
            publisher.switch("partial", token)
    assert publisher.live_version() == live


@BOTH_BACKENDS
def test_the_manifest_lists_every_key_with_its_size(
    publisher: Publisher, shop_model: ModelPayload, client: redis.Redis, layout: lay.Layout
) -> None:
    version = publisher.publish(shop_model)
    meta = publisher.meta(version)
    assert meta is not None
    entries = lay.manifest_of(meta)
    assert {e.part for e in entries} >= {
        "items",
        "popular",
        "catalog",
        "neighbours",
        "alternatives",
    }
    for entry in entries:  # on a cluster, one entry for each bucket of a bucketed part
        key = layout.entry_key(version, entry)
        size = client.hlen(key) if entry.kind == "hash" else client.strlen(key)
        assert size == entry.size, entry


@BOTH_BACKENDS
def test_keys_written_after_losing_the_lock_are_collected_by_the_next_publish(
    publisher: Publisher, block_model: ModelPayload, client: redis.Redis, layout: lay.Layout
) -> None:
    """A trainer paused past its lock's expiry resumes after another one collected: what
    it writes then is registered nowhere, and the next publish still finds it."""
    live = publisher.publish(block_model)
    client.set(layout.part("stalled", "items"), b"[]")
    client.hset(layout.field_key("stalled", "neighbours", "A1"), "A1", b"")
    client.set(f"{layout.model_prefix('unregistered')}anything", b"x")
    assert "stalled" in versions_in(client, layout)
    newest = publisher.publish(block_model)
    assert versions_in(client, layout) == {live, newest}


@BOTH_BACKENDS
def test_the_whole_run_lock_is_renewed_and_shuts_out_a_second_trainer(
    client: redis.Redis, layout: lay.Layout, block_model: ModelPayload
) -> None:
    first = Publisher(client, layout, lock_ttl_ms=300)
    second = Publisher(client, layout, lock_ttl_ms=300)
    with first.hold():
        time.sleep(1.0)  # three expiries: only the renewal keeps it
        with pytest.raises(LockedError, match="another trainer holds the lock"):
            second.publish(block_model)
        version = first.publish(block_model)  # the holder publishes under the same lock
    assert first.live_version() == version
    assert client.exists(layout.lock) == 0  # released at the end of the run
    second.publish(block_model)


@BOTH_BACKENDS
def test_a_lock_taken_over_is_noticed_before_the_switch(
    client: redis.Redis, layout: lay.Layout, block_model: ModelPayload
) -> None:
    holder = Publisher(client, layout, lock_ttl_ms=300)
    with holder.hold():
        client.set(layout.lock, "someone-else")  # it expired while we were stopped
        time.sleep(0.3)  # the renewal thread sees it
        with pytest.raises(LockedError, match="lock lost"):
            holder.publish(block_model)
    assert holder.live_version() is None
    assert client.get(layout.lock) == b"someone-else"  # not released: not ours


def test_a_full_redis_refuses_before_writing_and_says_so(
    tmp_path: Path, block_model: ModelPayload, layout: lay.Layout
) -> None:
    with redis_server(tmp_path, "--maxmemory-policy", "noeviction") as (url, _):
        small = redis.Redis.from_url(url)
        small.set("ballast", b"x" * 2_000_000)
        used = int(small.info("memory")["used_memory"])
        small.config_set("maxmemory", str(used + 1_000_000))
        publisher = Publisher(small, layout)
        big = dataclasses.replace(block_model, report_html="x" * 2_000_000)
        with pytest.raises(StoreFullError, match="needs about") as refused:
            publisher.publish(big)
        assert refused.value.exit_code == 6
        assert versions_in(small, layout) == set()
        # Past the estimate, Redis's own refusal is told apart from an outage too.
        small.config_set("maxmemory", str(used // 2))
        with pytest.raises(StoreFullError, match="out of memory"):
            publisher.write(block_model, "v", "token")
        small.close()


def test_an_evicting_policy_gets_a_warning(
    tmp_path: Path, block_model: ModelPayload, layout: lay.Layout
) -> None:
    with redis_server(tmp_path, "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru") as (
        url,
        _,
    ):
        warnings = io.StringIO()
        client = redis.Redis.from_url(url)
        Publisher(client, layout, warn=warnings).publish(block_model)
        assert "maxmemory-policy is allkeys-lru" in warnings.getvalue()
        client.close()


@BOTH_BACKENDS
def test_a_crashed_trainers_lock_is_outwaited_with_wait_lock(
    client: redis.Redis, layout: lay.Layout, block_model: ModelPayload
) -> None:
    """What the CronJob's retry meets after a trainer killed mid-publish: a lock nobody
    renews. Without a wait it exits 4; waiting past the expiry, it publishes."""
    client.set(layout.lock, "killed-trainer", px=600)  # left by a SIGKILLed run
    retry = Publisher(client, layout, lock_ttl_ms=600)
    with pytest.raises(LockedError) as refused, retry.hold():
        pass
    assert refused.value.exit_code == 4
    started = time.monotonic()
    with retry.hold(wait_s=0.6 * 3):
        version = retry.publish(block_model)
    assert 0.2 < time.monotonic() - started < 1.6
    assert retry.live_version() == version
