"""The published format, from the writer's side and the reader's side."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import redis

from recsvc import model as lay
from recsvc.store import ModelStore
from training.publish import ModelPayload, Publisher


def test_lists_round_trip_in_twelve_bytes_each() -> None:
    blob = lay.encode_pairs([3, 0, 7], [0.5, 0.25, -0.125], [12, 0, 3])
    assert len(blob) == 3 * 12
    idx, scores, counts = lay.decode_lists(blob)
    assert idx.tolist() == [3, 0, 7]
    assert scores.tolist() == [0.5, 0.25, -0.125]
    assert counts.tolist() == [12, 0, 3]
    assert lay.decode_pairs(lay.encode_pairs([1], [0.5]))[0].tolist() == [1]


def test_pairs_refuse_bad_shapes_and_truncated_blobs() -> None:
    with pytest.raises(ValueError, match="same length"):
        lay.encode_pairs([1, 2], [0.1])
    with pytest.raises(ValueError, match="uint32"):
        lay.encode_pairs([-1], [0.1])
    with pytest.raises(ValueError, match="multiple of 12"):
        lay.decode_pairs(b"\x00" * 8)


def test_every_key_of_a_version_lives_under_its_prefix() -> None:
    layout = lay.Layout("p")
    for key in layout.model_keys("v1"):
        assert key.startswith(layout.model_prefix("v1"))
    assert len(set(layout.model_keys("v1"))) == 11
    assert {layout.live, layout.previous, layout.lock, layout.versions}.isdisjoint(
        layout.model_keys("v1")
    )


def test_scripts_are_given_every_key_they_touch() -> None:
    layout = lay.Layout("p")
    keys, args = layout.fetch_args("v9", ["x", "y"], True)
    assert keys == [
        layout.live,
        layout.experiment,
        layout.stock_epoch("v9"),
        layout.neighbours("v9"),
        layout.alternatives("v9"),
    ]
    assert args == ["v9", "x", "y"]
    assert len(layout.fetch_args("v9", ["x"])[0]) == 4  # no alternatives asked for
    assert layout.fetch_args("v9", [], pointer=layout.candidate)[0][0] == layout.candidate
    keys, args = layout.customers_args("v9", ["c1", "c2"])
    assert keys == [
        layout.live,
        layout.stock_epoch("v9"),
        layout.event_histories,
        layout.experiment,
        layout.customers("v9"),
    ]
    assert args == ["v9", "c1", "c2"]
    assert layout.customers_args("v9", [], layout.candidate)[0][0] == layout.candidate


def test_a_cluster_layout_keeps_the_switch_in_one_slot_and_spreads_the_lists() -> None:
    from redis.crc import key_slot

    layout = lay.Layout.for_cluster("p")
    slot = key_slot(layout.live.encode())
    pointer_keys = [layout.previous, layout.lock, layout.candidate, layout.experiment]
    pointer_keys += [layout.meta("v1"), layout.items("v1"), layout.stock_epoch("v1")]
    pointer_keys += [layout.stock("v1"), layout.event_histories, layout.event_order("o1")]
    assert {key_slot(k.encode()) for k in pointer_keys} == {slot}
    # The scripts are given keys of one slot only.
    for keys in (
        layout.fetch_args("v1", ["a", "b"], True)[0],
        layout.customers_args("v1", ["c"])[0],
    ):
        assert {key_slot(k.encode()) for k in keys} == {slot}
    buckets = layout.bucket_keys("v1", "neighbours")
    assert len(set(buckets)) == lay.CLUSTER_BUCKETS
    # Each bucket in its own share of the slots: any even split over masters gets its share.
    shares = [key_slot(k.encode()) * 3 // 16384 for k in buckets]
    assert sorted(shares.count(m) for m in range(3)) == [21, 21, 22]
    # Every key of a version is found by the one pattern and names its version.
    import fnmatch

    for key in layout.model_keys("v1"):
        assert layout.version_of(key) == "v1", key
        assert fnmatch.fnmatchcase(key, layout.model_pattern), key
    assert layout.version_of(layout.live) is None
    with pytest.raises(ValueError, match="buckets"):
        layout.neighbours("v1")
    # A member's bucket is stable, and members spread over the buckets.
    members = [f"item-{i}" for i in range(6400)]
    counts = [len(v) for v in layout.by_bucket(members).values()]
    assert len(counts) == lay.CLUSTER_BUCKETS and min(counts) > 50
    assert layout.bucket_of("item-7") == lay.Layout.for_cluster("p").bucket_of("item-7")


def test_versions_sort_by_time_and_are_unique() -> None:
    """Ids made at later times sort later (across seconds, days and years); ids made in
    the same second differ."""
    t0 = datetime(2026, 12, 31, 23, 59, 58, tzinfo=UTC)
    times = [t0 + timedelta(seconds=s) for s in (0, 1, 2, 61, 3600, 86_400 * 40)]
    ids = [lay.new_version(t) for t in times]
    assert sorted(ids) == ids and ids[2].startswith("20270101T000000Z-")
    assert len({lay.new_version(t0) for _ in range(50)}) == 50


def test_readers_refuse_an_unknown_format() -> None:
    with pytest.raises(lay.UnknownFormatError):
        lay.check_format({"format": lay.FORMAT_VERSION + 1})


def test_what_the_trainer_writes_is_what_the_service_reads(
    client: redis.Redis, layout: lay.Layout, publisher: Publisher, block_model: ModelPayload
) -> None:
    version = publisher.publish(block_model)
    # Writer side: the raw keys hold the documented encodings.
    assert client.get(layout.live) == version.encode()
    items = lay.decode_json(client.get(layout.items(version)))  # type: ignore[arg-type]
    assert items == block_model.item_ids
    raw = client.hget(layout.neighbours(version), "A1")
    assert isinstance(raw, bytes)
    idx, scores = lay.decode_pairs(raw)
    expect_idx, expect_scores = block_model.neighbours.row(items.index("A1"))
    assert idx.tolist() == expect_idx.tolist()
    np.testing.assert_allclose(scores, expect_scores)
    meta = lay.decode_json(client.get(layout.meta(version)))  # type: ignore[arg-type]
    assert meta["format"] == lay.FORMAT_VERSION and meta["version"] == version


async def test_the_service_store_reads_the_trainers_model(
    redis_url: str, layout: lay.Layout, published: str, block_model: ModelPayload
) -> None:
    import redis.asyncio as aioredis

    async with aioredis.Redis.from_url(redis_url) as client:
        store = ModelStore(client, layout)
        view, lists = await store.neighbours(["A1", "nope"])
        assert view.version == published
        assert view.item_ids == tuple(block_model.item_ids)
        assert lists[1] is None
        assert lists[0] is not None
        idx = lists[0].indices
        assert {view.item_ids[i] for i in idx[:4]} <= {"A2", "A3", "A4", "A5"}
        assert view.popular.tolist() == block_model.popular_indices.tolist()
