"""Stored histories (each customer's latest distinct items), written to Redis by the
executors, each its partitions in pipelined chunks, with each customer's picks ranked
there (``training.stages.picks``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsvc import model as lay
from recsvc.store import backend as storage
from training.stages import ingest
from training.stages.histories import SELECTION_HALF_LIFE_DAYS
from training.stages.picks import PickMaker

WRITE_CHUNK = 2_000
"""Histories an executor sends in one ``HSET`` per bucket; four chunks a round trip."""


@dataclass
class SparkHistories:
    """Each customer's latest distinct items, newest first, as a Spark frame the executors
    write to Redis themselves (``training.publish.publisher.ExternalHistories``)."""

    frame: Any
    rows: int
    bytes_per_row: int

    @classmethod
    def of(cls, tagged: DataFrame, dated: bool, limit: int) -> SparkHistories:

        day = (
            F.floor(F.unix_seconds(F.col(ingest.TIMESTAMP)) / 86_400).cast("int")
            if dated
            else F.lit(-1)
        )
        # As ``training.stages.histories.recent_items``: the ``limit`` heaviest items (orders x
        # the decay of the latest purchase's age), then newest first, with their orders.
        last = tagged.groupBy(ingest.CUSTOMER, ingest.ITEM).agg(
            F.max(day).alias("d"), F.countDistinct(ingest.ORDER).alias("n")
        )
        latest = F.max("d").over(Window.partitionBy(ingest.CUSTOMER))
        weight = F.col("n") * F.pow(
            F.lit(0.5), (latest - F.col("d")) / F.lit(SELECTION_HALF_LIFE_DAYS)
        )
        rank = Window.partitionBy(ingest.CUSTOMER).orderBy(
            F.col("w").desc(), F.col("d").desc(), F.col(ingest.ITEM).asc()
        )
        kept = (
            last.withColumn("w", weight)
            .withColumn("r", F.row_number().over(rank))
            .where(F.col("r") <= limit)
            .withColumn("back", -F.col("d"))
        )
        frame = (
            kept.groupBy(ingest.CUSTOMER)
            .agg(F.array_sort(F.collect_list(F.struct("back", ingest.ITEM, "d", "n"))).alias("h"))
            .select(
                ingest.CUSTOMER,
                F.col(f"h.{ingest.ITEM}").alias("items"),
                F.col("h.d").alias("days"),
                F.col("h.n").alias("counts"),
            )
            .persist()
        )
        rows = frame.count()
        sample = frame.limit(1000).toPandas()
        per = 0
        if len(sample):
            per = int(
                sum(
                    len(c) + len(lay.encode_history(list(i), list(d), list(n)))
                    for c, i, d, n in sample.itertuples(index=False)
                )
                / len(sample)
            )
        return cls(frame, rows, per)

    def write(
        self,
        connection: dict[str, Any],
        layout: lay.Layout,
        version: str,
        erased: frozenset[str],
        picks: PickMaker | None,
    ) -> dict[int, int]:
        # The lists (items x top-N) go to each executor once; its tasks rank their
        # customers' picks with them, as the local publisher does.
        shared = None if picks is None else self.frame.sparkSession.sparkContext.broadcast(picks)

        def write_partition(rows: Iterator[Any]) -> Iterator[tuple[int, int]]:
            maker = None if shared is None else shared.value
            encode = lay.encode_history if maker is None else maker.value
            client = storage.client_from_spec(connection)
            store = storage.sync_storage(client, layout)
            counts: dict[int, int] = {}
            pipe = store.pipeline()
            chunk: dict[str, bytes] = {}
            sent = 0

            def flush() -> None:
                nonlocal chunk, sent
                for bucket, k in store.put_fields(pipe, version, "customers", chunk).items():
                    counts[bucket] = counts.get(bucket, 0) + k
                chunk = {}
                sent += 1
                if sent % 4 == 0:
                    pipe.execute()

            try:
                for row in rows:
                    if row[0] in erased:
                        continue
                    chunk[row[0]] = encode(list(row[1]), list(row[2]), list(row[3]))
                    if len(chunk) >= WRITE_CHUNK:
                        flush()
                if chunk:
                    flush()
                pipe.execute()
            finally:
                client.close()
            yield from counts.items()

        written = (
            self.frame.rdd.mapPartitions(write_partition).reduceByKey(lambda a, b: a + b).collect()
        )
        self.frame.unpersist()
        if shared is not None:
            shared.destroy()
        return {int(b): int(k) for b, k in written}
