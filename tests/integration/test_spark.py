"""The Spark engine on real Spark (``local[2]``): the same cleaning, the same complements
and evidence as the local engine, alternatives with known answers, and the nightly run
end to end through the same CLI, gate and exit codes into a real 3-master Redis Cluster.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsvc import model as lay
from recsvc.api.app import create_app
from recsvc.config import Settings
from recsvc.store import backend as storage
from tests.conftest import (
    GROUPED_ARGS,
    TEST_CONFIG,
    grouped_purchases,
    in_process,
    shop_purchases,
)
from training.cli.main import main
from training.engines.local import Stages, fit, load
from training.engines.spark.engine import SparkEngine
from training.engines.spark.frames import to_pandas
from training.engines.spark.histories import SparkHistories
from training.errors import EXIT_REFUSED
from training.publish import Publisher
from training.stages import ingest

pytestmark = pytest.mark.spark

FAST = {"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"}
SPARK_ARGS = [
    "--engine", "spark", "--spark-master", "local[2]", "--iterations", "3",
    *[a for k, v in FAST.items() for a in ("--spark-conf", f"{k}={v}")],
]  # fmt: skip
COLUMNS = ingest.Columns(
    customer="customer",
    item="item",
    order="order",
    quantity="quantity",
    timestamp="timestamp",
    price="price",
    description="description",
)
CONFIG = replace(
    TEST_CONFIG,
    columns=COLUMNS,
    method="cooccurrence",
    negatives=0,
    als=replace(TEST_CONFIG.als, iterations=3),
)


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkEngine]:
    """One Spark session for the module's tests (a CLI run in the same process reuses
    it: ``getOrCreate``)."""
    engine = SparkEngine("local[2]", dict(FAST))
    engine.session()
    yield engine
    engine.stop()


def quiet() -> Stages:
    return Stages(io.StringIO())


# -- the same stages -------------------------------------------------------------------


def test_cleaning_drops_the_same_rows_for_the_same_reasons(
    spark: SparkEngine, tmp_path: Path
) -> None:
    good = grouped_purchases(orders=40)
    good["timestamp"] = good["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    dirty = pd.DataFrame(
        [
            {"customer": "", "item": "I001", "order": "x1"},  # missing customer
            {"customer": "c9", "item": None, "order": "x2"},  # missing item
            {"customer": "c9", "item": "bad\x01id", "order": "x3"},  # invalid id
            {"customer": "c9", "item": "I001", "order": "C123"},  # cancelled
            {"customer": "c9", "item": "I001", "order": "x4", "quantity": "-2"},
            {"customer": "c9", "item": "I001", "order": "x5", "price": "0"},
            {"customer": "c9", "item": "I001", "order": "x6", "timestamp": "not a date"},
            {"customer": "c9", "item": "POST", "order": "x7"},  # non-product
            {"customer": "17850.0", "item": " I002 ", "order": "x8"},  # normalised ids
        ]
    )
    defaults = {"quantity": "1", "price": "2.5", "timestamp": "2024-02-01 10:00:00"}
    dirty = dirty.assign(**{k: dirty.get(k, pd.Series(dtype=object)) for k in defaults})
    dirty = dirty.fillna(defaults).assign(description="thing")
    lines = pd.concat([good.astype(str), dirty, good.head(3).astype(str)])  # 3 duplicates
    path = tmp_path / "purchases.csv"
    lines.to_csv(path, index=False)

    # Online Retail's prefix rule for cancellations ("C123"), which both engines apply.
    cleaning = replace(CONFIG.cleaning, cancelled_order_prefix="C")
    config = replace(CONFIG, columns=COLUMNS, cleaning=cleaning)
    local, local_report = load(path, config, quiet())
    frame, report = spark.load(str(path), config, quiet())
    assert report == local_report
    assert report.dropped == {
        "missing_customer": 1,
        "missing_item": 1,
        "invalid_id": 1,
        "cancelled_order": 1,
        "non_positive_or_missing_quantity": 1,
        "non_positive_or_missing_price": 1,
        "bad_timestamp": 1,
        "non_product": 1,
        "exact_duplicate": 3,
    }
    theirs = to_pandas(frame)
    # The same lines in the same order (the evaluation draws its cases from that order).
    key = ["order", "item", "customer", "quantity", "price"]
    assert local[key].astype(str).equals(theirs[key].astype(str))
    assert (local["timestamp"] == theirs["timestamp"]).all()
    assert "17850" in set(theirs["customer"].astype(str))  # 17850.0 read as the id 17850
    assert "I002" in set(theirs["item"].astype(str))


def test_complements_and_their_evidence_agree_with_the_local_engine(
    spark: SparkEngine,
) -> None:
    frame, _ = ingest.clean(grouped_purchases(), CONFIG.cleaning)
    local = fit(frame, CONFIG, quiet(), for_serving=False)
    ours = spark.fit(frame, CONFIG, quiet(), for_serving=False)
    assert ours.item_ids == local.item_ids
    overlap = []
    for i, item in enumerate(ours.item_ids):
        mine, theirs = ours.neighbours.row(i)[0][:10], local.neighbours.row(i)[0][:10]
        overlap.append(len(set(mine) & set(theirs)) / max(len(theirs), 1))
        # Known answers: an item's complements are its own group's (five to a group).
        group = int(item[1:]) // 5
        assert {int(ours.item_ids[j][1:]) // 5 for j in mine} == {group}
    assert min(overlap) == 1.0
    np.testing.assert_allclose(ours.neighbours.scores, local.neighbours.scores, rtol=1e-5)
    local_counts = fit(frame, CONFIG, quiet()).neighbours.counts
    assert ours.neighbours.counts is not None and local_counts is not None
    assert np.array_equal(ours.neighbours.counts, local_counts)
    assert ours.meta["counts"] == local.meta["counts"]
    assert np.array_equal(ours.popular_indices, local.popular_indices)


def test_alternatives_are_what_the_same_customers_buy_instead(spark: SparkEngine) -> None:
    """Mugs are bought by the same customers, never two in one order: each other's
    alternatives; tea and the spoon go in every mug's orders: complements, never
    alternatives."""
    frame, _ = ingest.clean(shop_purchases(), CONFIG.cleaning)
    ours = spark.fit(frame, CONFIG, quiet())
    local = fit(frame, CONFIG, quiet())
    assert ours.alternatives is not None and local.alternatives is not None
    ids = ours.item_ids
    for mug in ("M1", "M2", "M3"):
        i = ids.index(mug)
        alts = {ids[j] for j in ours.alternatives.row(i)[0]}
        assert alts == {"M1", "M2", "M3"} - {mug}
        local_alts = {local.item_ids[j] for j in local.alternatives.row(i)[0]}
        assert alts == local_alts
        counts = ours.alternatives.counts_row(i)
        assert (counts >= 2).all()  # customers who bought both
    assert isinstance(ours.external_histories, SparkHistories)
    assert ours.external_histories.rows == len(local.histories)
    # The same items kept per customer, in the same order, with the same days and orders.
    theirs = {
        str(r[0]): (list(r[1]), list(r[2]), list(r[3]))
        for r in ours.external_histories.frame.collect()
    }
    assert theirs == dict(local.histories.items())
    assert ours.catalog == local.catalog


# -- the nightly run, end to end -----------------------------------------------------------


def _write(directory: Path, name: str, mixed: bool = False) -> str:
    path = directory / f"{name}.parquet"
    grouped_purchases(mixed=mixed).to_parquet(path)
    return str(path)


@pytest.fixture
def cluster_settings(cluster_urls: list[str], tmp_path: Path) -> Settings:
    return Settings(
        redis_url=cluster_urls[0],
        redis_cluster=True,
        key_prefix=f"t-{uuid.uuid4().hex[:10]}",
        data_dir=tmp_path,
        refresh_interval_s=0,
    )


async def test_the_spark_engine_trains_into_a_cluster_and_rolls_back(
    spark: SparkEngine,
    cluster_settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = cluster_settings
    good = _write(tmp_path, "good")
    # First a version from the local engine; then the Spark engine's, gated against it.
    assert main(["train", "--purchases", good, *GROUPED_ARGS], settings) == 0
    local_line = capsys.readouterr().out
    assert main(["train", "--purchases", good, *GROUPED_ARGS, *SPARK_ARGS], settings) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("trained: "))

    # The same summary line as the local engine's, field for field (stage timings aside:
    # each engine names its own stages).
    def fields(text: str) -> list[str]:
        summary = next(x for x in text.splitlines() if x.startswith("trained: "))
        return [t.split("=")[0] for t in summary.split() if "=" in t and "MiB" not in t]

    assert fields(out) == fields(local_line)
    assert "gate=passed" in line
    client = storage.sync_client(str(settings.redis_url), cluster=True)
    try:
        publisher = Publisher(client, settings.layout)
        version, previous = publisher.live_version(), publisher.previous_version()
        assert version is not None and previous is not None
        assert version in line
        meta = publisher.meta(version)
        assert meta is not None and meta["engine"]["name"] == "spark"
        assert meta["params"]["neighbour_method"] == "cooccurrence"
        assert meta["evaluation"]["served"]["cart_hr@10"] > 0.9  # the groups are learnt
        # The executors wrote every stored history, spread over the buckets.
        stored = [e for e in lay.manifest_of(meta) if e.part == "customers"]
        assert sum(e.size or 0 for e in stored) == meta["customers_stored"] == 48
        assert len(stored) > 10
        app = create_app(settings)
        async with in_process(app) as api:
            cart = await api.post(
                "/v1/recommendations/cart", json={"items": ["I000", "I001"], "k": 3}
            )
            customer = await api.get("/v1/customers/c0-1/recommendations", params={"k": 3})
        assert cart.status_code == 200, cart.text
        assert cart.json()["model_version"] == version
        suggested = {x["item_id"] for x in cart.json()["cross_sell"]}
        assert len(suggested) == 3 and suggested <= {"I002", "I003", "I004"}
        assert customer.status_code == 200 and customer.json()["fallback"] is False
        assert main(["rollback"], settings) == 0
        assert publisher.live_version() == previous
    finally:
        client.close()


def test_the_gate_refuses_a_worse_spark_candidate_with_the_same_exit_code(
    spark: SparkEngine, settings: Settings, publisher: Publisher, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["train", "--purchases", _write(settings.data_dir, "good"), *GROUPED_ARGS], settings)
        == 0
    )
    live = publisher.live_version()
    capsys.readouterr()
    mixed = _write(settings.data_dir, "mixed", mixed=True)
    code = main(["train", "--purchases", mixed, *GROUPED_ARGS, *SPARK_ARGS], settings)
    assert code == EXIT_REFUSED
    assert "quality gate refused the candidate" in capsys.readouterr().err
    assert publisher.live_version() == live


def test_bad_input_to_the_spark_engine_is_a_clear_error(
    spark: SparkEngine, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nothing-here.parquet")
    assert main(["train", "--purchases", missing, *GROUPED_ARGS, *SPARK_ARGS], settings) == 2
    assert "could not read" in capsys.readouterr().err
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n1,2\n")
    assert main(["train", "--purchases", str(wrong), *GROUPED_ARGS, *SPARK_ARGS], settings) == 2
    assert "missing column(s)" in capsys.readouterr().err
    bad = ["--spark-conf", "no-equals-sign"]
    assert (
        main(["train", "--purchases", str(wrong), *GROUPED_ARGS, *SPARK_ARGS, *bad], settings) == 2
    )
    assert "KEY=VALUE" in capsys.readouterr().err
    assert publisher_untouched(settings)


def publisher_untouched(settings: Settings) -> bool:
    client = storage.sync_client(str(settings.redis_url), cluster=False)
    try:
        return Publisher(client, settings.layout).live_version() is None
    finally:
        client.close()


def test_live_order_events_join_the_files_lines_once(spark: SparkEngine, tmp_path: Path) -> None:
    """``train --include-events``: the events' orders the file does not hold yet are
    trained on, after the file's lines; an order the export caught up with counts once."""
    lines = grouped_purchases(orders=40)
    path = tmp_path / "purchases.parquet"
    lines.to_parquet(path)
    known = str(lines["order"].iloc[0])
    events = pd.DataFrame(
        {
            "customer": ["c0-1", "c0-1", "newcomer"],
            "item": ["I001", "I002", "I003"],
            "order": [known, known, "live-1"],
            "quantity": [1.0, 1.0, 2.0],
            "timestamp": pd.to_datetime(["2024-06-01"] * 3, utc=True),
            "price": [1.0, 1.0, 3.0],
            "description": ["", "", ""],
        }
    )
    frame, report = spark.load(str(path), CONFIG, quiet(), extra=events)
    got = to_pandas(frame)
    assert report.rows_read == len(lines) + 1  # the new order's line only
    assert got["order"].astype(str).iloc[-1] == "live-1"  # after the file's lines
    assert (got["order"].astype(str) == known).sum() == (lines["order"] == known).sum()


def test_nanosecond_timestamps_as_pandas_writes_them_are_read_alike(
    spark: SparkEngine, tmp_path: Path
) -> None:
    lines = grouped_purchases(orders=40)
    lines["timestamp"] = lines["timestamp"].astype("datetime64[ns, UTC]")
    path = tmp_path / "nanos.parquet"
    lines.to_parquet(path)  # TIMESTAMP(NANOS), which Spark reads only as a number
    local, local_report = load(path, CONFIG, quiet())
    frame, report = spark.load(str(path), CONFIG, quiet())
    theirs = to_pandas(frame)
    assert report == local_report
    assert (theirs["timestamp"] == local["timestamp"]).all()


async def test_the_executors_store_picks_that_answer_as_ranking_online(
    spark: SparkEngine, settings: Settings, publisher: Publisher
) -> None:
    """The executors rank each stored customer's picks with the broadcast lists: served
    from them, every customer gets what ranking the lists online gives."""
    from recsvc.answers import picks
    from recsvc.store import CatalogAdmin, ModelStore
    from tests.integration.test_picks import RULES, both_ways

    frame, _ = ingest.clean(grouped_purchases(), CONFIG.cleaning)
    payload = spark.fit(frame, CONFIG, quiet())
    assert payload.external_histories is not None and payload.picks is not None
    version = publisher.publish(payload)
    meta = publisher.meta(version)
    assert meta is not None and meta["picks"]["n"] == picks.PICKS_PER_CUSTOMER
    customers = sorted(
        c.decode() if isinstance(c, bytes) else c
        for c in publisher.client.hkeys(settings.layout.customers(version))
    )
    assert len(customers) == 48
    client = storage.async_client(str(settings.redis_url), False, 5.0, blocking=False)
    try:
        store = ModelStore(client, settings.layout)
        await CatalogAdmin(store).set_stock({"I003": {"available": False}})
        answered = 0
        for rules in RULES:
            mine, online, used = await both_ways(store, settings, customers, 10, rules)
            assert mine == online, rules
            answered += used
        assert answered >= 4 * len(customers)  # all but the boost's (rules name no category)
    finally:
        await client.aclose()
