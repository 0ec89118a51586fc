"""The published format, from the writer's side and the reader's side."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from recsvc import layout as lay
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


def test_fetch_args_name_the_keys_of_any_version() -> None:
    layout = lay.Layout("p")
    head, neighbours, alternatives, epoch, *ids = layout.fetch_args(["x", "y"], True)
    assert head + "v9" + neighbours == layout.neighbours("v9")
    assert head + "v9" + alternatives == layout.alternatives("v9")
    assert head + "v9" + epoch == layout.stock_epoch("v9")
    assert ids == ["x", "y"]
    assert layout.fetch_args(["x"])[2] == ""  # no alternatives asked for
    assert layout.fetch_keys() == [layout.live, layout.experiment]
    assert layout.fetch_keys(layout.candidate) == [layout.candidate, layout.experiment]
    live, epoch_key, customers, events, test, version, *who = layout.customers_args(
        "v9", ["c1", "c2"]
    )
    assert (events, test) == (layout.event_histories, layout.experiment)
    assert layout.customers_args("v9", [], layout.candidate)[0] == layout.candidate
    assert (live, epoch_key, customers) == (
        layout.live,
        layout.stock_epoch("v9"),
        layout.customers("v9"),
    )
    assert version == "v9" and who == ["c1", "c2"]


def test_versions_sort_by_time_and_are_unique() -> None:
    a, b = lay.new_version(), lay.new_version()
    assert a != b
    assert a[:16] <= b[:16]


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
