"""The Spark engine: the trainer's stages on Apache Spark (``pyspark``), for stores past
one machine.

The same stages as ``training.engines.local``, in Spark SQL, so that memory on any one
machine grows with items x top-N (the lists the driver collects), never with lines,
customers or items x items:

- **read and clean**: Parquet or CSV from any path Spark reads (local, HDFS, S3A), the
  same rules as ``training.stages.ingest.clean`` and the same per-reason counts, in one pass;
- **complements**: pair counting per order in Spark SQL, each order weighted by the same
  recency decay (``matrices.order_weights``), scored as the cosine of the weighted orders
  (the local engine's ``cooccurrence`` method, the neighbour method that is pair counts
  and runs distributed as they are), with the orders bought together as evidence;
- **ALS**: ``pyspark.ml.recommendation.ALS`` on the same confidence (binary, counts or
  BM25, computed in SQL); its item factors re-rank the alternatives;
- **alternatives**: pair counting per customer (customers with more than
  ``MAX_CUSTOMER_ITEMS`` distinct items left out, as locally), pairs seldom in one order,
  scored as the local engine scores them;
- **popularity** and **stored histories** (each customer's latest distinct items):
  the histories are written to Redis by the executors, each its partitions in pipelined
  chunks, through ``recsvc.model``; the driver writes the rest and makes the one atomic
  switch under the publisher lock (``training.publish.publisher``);
- **evaluation** on a seeded sample of customers (all of them below ``eval_lines``),
  scored by the project's own evaluation exactly as the local engine's model is.

Differences from the local engine, by design: complements are co-occurrence (the local
default, EASE, solves a regression per item that this engine does not distribute yet),
and ``regularization`` is Spark's ALS-WR ``regParam`` (scaled by each row's count), not
``implicit``'s absolute one.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from training.engines.local import Stages, TrainConfig, catalog_meta, model_meta, package
from training.engines.spark.cleaning import clean, derived_catalog, with_events
from training.engines.spark.frames import LINE, first_line, from_pandas, one_value, to_pandas
from training.engines.spark.histories import SparkHistories
from training.engines.spark.lists import (
    als_factors,
    alternative_lists,
    complement_lists,
    order_pairs,
    order_weights,
)
from training.errors import InputError
from training.neighbours.registry import method_for
from training.neighbours.spec import SPARK
from training.publish import ModelPayload
from training.stages import ingest
from training.stages.catalog import align

# pyspark 4.3 warns on every pandas conversion that it has not been certified with
# pandas 3; the conversions used here (flat columns of strings, numbers, timestamps) are
# checked against the local engine's by the tests.
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)


@dataclass
class SparkEngine:
    """Runs the stages on ``master`` (``local[*]``, ``spark://...``, ``yarn``,
    ``k8s://...``); ``conf`` goes to the session as ``--conf`` would."""

    master: str | None = None
    """None: the master ``spark-submit`` was given, else ``local[*]``."""
    conf: dict[str, str] = field(default_factory=dict)
    eval_lines: int = 2_000_000
    """Lines the evaluation scores at most: a seeded sample of customers beyond it."""
    name: str = "spark"
    _spark: Any = field(default=None, repr=False)

    # -- the session -------------------------------------------------------------------

    def session(self) -> SparkSession:
        if self._spark is None:
            builder = SparkSession.builder.appName("recsvc-train")
            if self.master is not None or "PYSPARK_GATEWAY_PORT" not in os.environ:
                # Under spark-submit (which starts the JVM and names the master) the
                # master is left as submitted unless --spark-master says otherwise.
                self.master = self.master or "local[*]"
                builder = builder.master(self.master)
            defaults = {
                "spark.ui.enabled": "false",
                "spark.ui.showConsoleProgress": "false",  # one line per stage in cron logs
                "spark.sql.session.timeZone": "UTC",
                # What pandas does with a bad cell (NaN, NaT), not an exception.
                "spark.sql.ansi.enabled": "false",
                "spark.sql.legacy.timeParserPolicy": "CORRECTED",
                # pandas writes nanosecond timestamps, which Spark reads only as numbers
                # (then taken as nanoseconds since 1970, as pandas reads them).
                "spark.sql.legacy.parquet.nanosAsLong": "true",
                "spark.sql.execution.arrow.pyspark.enabled": "true",
                "spark.sql.shuffle.partitions": "8",
                "spark.driver.memory": "2g",
            }
            if (self.master or "").startswith("local"):
                # Workers in this interpreter (the venv with recsvc), not the first python3.
                defaults["spark.pyspark.python"] = sys.executable
                os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            for key, value in {**defaults, **self.conf}.items():
                builder = builder.config(key, value)
            try:
                self._spark = builder.getOrCreate()
            except Exception as exc:  # no Java, a master that does not answer
                raise InputError(f"could not start Spark on {self.master}: {exc}") from exc
            self._spark.sparkContext.setLogLevel("ERROR")
            self.master = self._spark.sparkContext.master
            if self.master.startswith("local") and "spark.checkpoint.dir" not in self.conf:
                # ALS checkpoints every 10 iterations when it has somewhere to: that cuts
                # its lineage, so the shuffles of earlier iterations can be deleted (on
                # 20M lines, over 30 GB of them otherwise). A cluster names a shared path
                # with --spark-conf spark.checkpoint.dir=hdfs://...
                self._spark.sparkContext.setCheckpointDir(
                    tempfile.mkdtemp(prefix="recsvc-spark-checkpoints-")
                )
        return self._spark  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self._spark is not None:
            self._spark.stop()
            self._spark = None

    # -- read and clean ----------------------------------------------------------------

    def load(
        self, source: str, config: TrainConfig, stages: Stages, extra: pd.DataFrame | None = None
    ) -> tuple[DataFrame, ingest.CleanReport]:
        spark = self.session()
        with stages.stage("read"):
            raw = self._read(spark, source, config.columns)
            if extra is not None and not extra.empty:
                raw = with_events(spark, raw, extra)
        with stages.stage("clean"):
            frame, report = clean(raw, config.cleaning)
        for line in report.lines():
            stages.say("  " + line)
        return frame, report

    def _read(self, spark: SparkSession, source: str, columns: ingest.Columns) -> DataFrame:
        lower = source.lower()
        try:
            if lower.endswith((".csv", ".csv.gz", ".tsv", ".txt")):
                sep = "\t" if ".tsv" in lower else ","
                df = spark.read.option("header", True).option("sep", sep).csv(source)
            else:  # Parquet: a file or a directory of parts
                df = spark.read.parquet(source)
        except Exception as exc:  # AnalysisException: no such path, not Parquet
            raise InputError(f"could not read {source}: {first_line(exc)}") from exc
        mapping = columns.mapping()
        missing = [c for c in dict.fromkeys(mapping.values()) if c not in df.columns]
        if missing:
            raise InputError(
                f"{source}: missing column(s) {', '.join(missing)}; the file has "
                f"{', '.join(df.columns)}"
            )

        # Each line's place in the file: the evaluation sees the lines in the local engine's
        # order, so the same cases are drawn and the two engines are scored alike.
        return df.select(
            *[F.col(col).alias(std) for std, col in mapping.items()],
            F.monotonically_increasing_id().alias(LINE),
        )

    def evaluation_frame(self, frame: DataFrame, seed: int) -> pd.DataFrame:
        """A seeded sample of customers (every one of them, up to ``eval_lines`` lines), in
        the local engine's standard columns: what the evaluation scores."""

        lines = frame.count()
        if lines > self.eval_lines:
            share = self.eval_lines / lines
            pick = F.abs(F.xxhash64(F.col(ingest.CUSTOMER), F.lit(seed))) % 1_000_000
            frame = frame.where(pick < int(share * 1_000_000))
        return to_pandas(frame)

    # -- training ------------------------------------------------------------------------

    def fit(
        self,
        frame: DataFrame | pd.DataFrame,
        config: TrainConfig,
        stages: Stages,
        for_serving: bool = True,
        catalog: pd.DataFrame | None = None,
    ) -> ModelPayload:

        spark = self.session()
        try:
            method_for(config.method, SPARK)  # co-occurrence: pair counts, distributed as they are
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        config = replace(config, negatives=0)
        lines = frame if not isinstance(frame, pd.DataFrame) else from_pandas(spark, frame)
        dated = ingest.TIMESTAMP in lines.columns
        with stages.stage("matrices"):
            item_ids = sorted(str(r[0]) for r in lines.select(ingest.ITEM).distinct().collect())
            n = len(item_ids)
            if n < 2:
                raise InputError(f"need at least 2 distinct items to train, found {n}")
            index = spark.createDataFrame(
                pd.DataFrame({ingest.ITEM: item_ids, "i": np.arange(n, dtype=np.int32)})
            )
            tagged = lines.join(F.broadcast(index), ingest.ITEM)
            orders = order_weights(tagged, dated, config.recency_half_life_days)
            oi = tagged.select(ingest.ORDER, "i").distinct().join(orders, ingest.ORDER).persist()
            ci = oi.groupBy(ingest.CUSTOMER, "i").agg(F.count("*").alias("n")).persist()
            totals = one_value(
                ci.agg(
                    F.countDistinct(ingest.CUSTOMER).alias("customers"),
                    F.count("*").alias("pairs"),
                )
            )
            counts = {
                "customers": int(totals["customers"]),
                "items": n,
                "orders": int(orders.count()),
                "customer_item_pairs": int(totals["pairs"]),
            }
        stages.say(
            f"  {counts['customers']:,} customers x {n:,} items, {counts['orders']:,} orders, "
            f"{counts['customer_item_pairs']:,} customer-item pairs (Spark, {self.master})"
        )
        with stages.stage("neighbours"):
            diag = oi.groupBy("i").agg(F.sum("w").alias("g"), F.count("*").alias("orders"))
            pairs = order_pairs(oi).persist()
            nb = complement_lists(pairs, diag, n, config.top_n)
            pop_rows = ci.groupBy("i").agg(F.count("*").alias("buyers")).collect()
            pop = np.zeros(n, np.float64)
            for r in pop_rows:
                pop[int(r["i"])] = float(r["buyers"])
        alts = None
        if for_serving:
            with stages.stage("als"):
                factors = als_factors(ci, config)
            with stages.stage("alternatives"):
                alts = alternative_lists(ci, pairs, diag, factors, n, config.alternatives_n)
        pairs.unpersist()
        meta = model_meta(config, counts, nb, f"spark-cooccurrence ({self.master})")
        meta["engine"] = {"name": "spark", "master": self.master, "version": spark.version}
        external = None
        if for_serving and config.history_items > 0:
            with stages.stage("histories"):
                external = SparkHistories.of(tagged, dated, config.history_items)
            meta["customers_stored"] = external.rows
        if dated:
            period = one_value(
                lines.agg(
                    F.min(ingest.TIMESTAMP).alias("first"), F.max(ingest.TIMESTAMP).alias("last")
                )
            )
            meta["data_period"] = {
                "first": pd.Timestamp(period["first"], tz="UTC").isoformat(),
                "last": pd.Timestamp(period["last"], tz="UTC").isoformat(),
            }
        facts = None
        if for_serving:
            with stages.stage("catalog"):
                facts = align(item_ids, catalog, derived_catalog(tagged, item_ids, dated))
            meta["catalog"] = catalog_meta(facts, catalog is not None)
        oi.unpersist()
        ci.unpersist()
        return package(
            item_ids, nb, pop, config.popular_n, meta, alternatives=alts, catalog=facts,
            external_histories=external, picks=config.picks if external else None,
        )  # fmt: skip
