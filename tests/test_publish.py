"""Publishing: whole versions, one atomic switch, rollback, the lock, leftovers collected."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest
import redis

from recsvc import layout as lay
from training.errors import LockedError, TrainingError
from training.neighbours import Neighbours
from training.publish import ModelPayload, Publisher


def variant(model: ModelPayload, score: float) -> ModelPayload:
    """The same model with every neighbour score set to ``score``: a version fingerprint."""
    nb = Neighbours(model.neighbours.indices, np.full_like(model.neighbours.scores, score))
    return dataclasses.replace(model, neighbours=nb)


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
    assert {m.decode() for m in client.smembers(layout.versions)} == {v2, v3}  # type: ignore[union-attr]


def test_rollback_swaps_live_and_previous(publisher: Publisher, block_model: ModelPayload) -> None:
    v1 = publisher.publish(block_model)
    v2 = publisher.publish(block_model)
    assert publisher.rollback() == v1
    assert (publisher.live_version(), publisher.previous_version()) == (v1, v2)
    assert publisher.rollback() == v2  # and back again


def test_rollback_without_previous_is_refused(
    publisher: Publisher, block_model: ModelPayload
) -> None:
    with pytest.raises(TrainingError, match="no previous"):
        publisher.rollback()
    publisher.publish(block_model)
    with pytest.raises(TrainingError, match="no previous"):
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
            version, _, blobs, _ = fetch(
                keys=[layout.live], args=layout.fetch_args(["A1", "B1", "A3"])
            )
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


def test_a_run_that_dies_before_the_switch_leaves_the_live_model(
    publisher: Publisher, block_model: ModelPayload, client: redis.Redis, layout: lay.Layout
) -> None:
    live = publisher.publish(block_model)
    with publisher.lock() as token:
        publisher.write(block_model, "dead-run", token)  # ... and then the process dies
    assert publisher.live_version() == live
    # The next successful publish removes the leftovers.
    publisher.publish(block_model)
    assert client.exists(*layout.model_keys("dead-run")) == 0


def test_a_second_trainer_is_locked_out(publisher: Publisher, block_model: ModelPayload) -> None:
    with publisher.lock(), pytest.raises(LockedError, match="another trainer"):
        publisher.publish(block_model)
    assert publisher.live_version() is None
    publisher.publish(block_model)  # the lock was released
    assert publisher.live_version() is not None


def test_the_lock_expires_when_its_holder_dies(
    client: redis.Redis, layout: lay.Layout, block_model: ModelPayload
) -> None:
    short = Publisher(client, layout, lock_ttl_ms=200)
    client.set(layout.lock, "a-dead-trainer", px=200)
    with pytest.raises(LockedError):
        short.publish(block_model)
    time.sleep(0.3)
    assert short.publish(block_model) == short.live_version()


def test_a_trainer_that_lost_its_lock_cannot_switch(
    publisher: Publisher, block_model: ModelPayload, client: redis.Redis, layout: lay.Layout
) -> None:
    live = publisher.publish(block_model)
    with publisher.lock() as token:
        publisher.write(block_model, "stalled", token)
        client.set(layout.lock, "someone-else")  # our lock expired; another took it
        with pytest.raises(LockedError, match="lock lost"):
            publisher.switch("stalled", token)
    assert publisher.live_version() == live
    client.delete(layout.lock)


def test_a_version_without_metadata_is_never_switched_to(
    publisher: Publisher, client: redis.Redis, layout: lay.Layout
) -> None:
    with publisher.lock() as token, pytest.raises(LockedError, match="INCOMPLETE"):
        publisher.switch("never-written", token)
    assert publisher.live_version() is None
