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
  chunks, through ``recsvc.model.layout``; the driver writes the rest and makes the one atomic
  switch under the publisher lock (``training.publish.publisher``);
- **evaluation** on a seeded sample of customers (all of them below ``eval_lines``),
  scored by the project's own evaluation exactly as the local engine's model is.

Differences from the local engine, by design: complements are co-occurrence (the local
default, EASE, solves a regression per item that this engine does not distribute yet),
and ``regularization`` is Spark's ALS-WR ``regParam`` (scaled by each row's count), not
``implicit``'s absolute one.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from pyspark.ml.recommendation import ALS
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsvc import model as lay
from recsvc.store import backend as storage
from training.engines.local import Stages, TrainConfig, catalog_meta, model_meta, package
from training.errors import InputError
from training.neighbours.methods import Neighbours
from training.publish.publisher import ModelPayload
from training.stages import ingest
from training.stages.catalog import RECENT_DAYS, align
from training.stages.histories import SELECTION_HALF_LIFE_DAYS

# pyspark 4.3 warns on every pandas conversion that it has not been certified with
# pandas 3; the conversions used here (flat columns of strings, numbers, timestamps) are
# checked against the local engine's by the tests.
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)

LINE = "_line"
"""A read line's place in its file (Spark's ``monotonically_increasing_id``: increasing
with the file's order, partition by partition)."""
MAX_CUSTOMER_ITEMS = 2_000
"""Customers with more distinct items than this (resellers) make no alternatives, as in
``training.neighbours.methods.alternatives``."""
MIN_SHARED = 2
MAX_TOGETHER = 0.05
SHORTLIST = 4
BM25_K1, BM25_B = 100.0, 0.8
"""``training.stages.matrices.weight``'s BM25, as ``implicit.nearest_neighbours.bm25_weight``."""
WRITE_CHUNK = 2_000
"""Histories an executor sends in one ``HSET`` per bucket; four chunks a round trip."""
STD = (
    ingest.CUSTOMER,
    ingest.ITEM,
    ingest.ORDER,
    ingest.QUANTITY,
    ingest.TIMESTAMP,
    ingest.PRICE,
    ingest.DESCRIPTION,
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
                raw = _with_events(spark, raw, extra)
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
            raise InputError(f"could not read {source}: {_first_line(exc)}") from exc
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
        config = replace(config, method="cooccurrence", negatives=0)
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
            orders = _orders(tagged, dated, config.recency_half_life_days)
            oi = tagged.select(ingest.ORDER, "i").distinct().join(orders, ingest.ORDER).persist()
            ci = oi.groupBy(ingest.CUSTOMER, "i").agg(F.count("*").alias("n")).persist()
            totals = _one(
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
            pairs = _order_pairs(oi).persist()
            nb = _complements(pairs, diag, n, config.top_n)
            pop_rows = ci.groupBy("i").agg(F.count("*").alias("buyers")).collect()
            pop = np.zeros(n, np.float64)
            for r in pop_rows:
                pop[int(r["i"])] = float(r["buyers"])
        alts = None
        if for_serving:
            with stages.stage("als"):
                factors = _als(ci, config)
            with stages.stage("alternatives"):
                alts = _alternatives(ci, pairs, diag, factors, n, config.alternatives_n)
        pairs.unpersist()
        meta = model_meta(config, counts, nb, f"spark-cooccurrence ({self.master})")
        meta["engine"] = {"name": "spark", "master": self.master, "version": spark.version}
        external = None
        if for_serving and config.history_items > 0:
            with stages.stage("histories"):
                external = SparkHistories.of(tagged, dated, config.history_items)
            meta["customers_stored"] = external.rows
        if dated:
            period = _one(
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
                facts = align(item_ids, catalog, _derived_catalog(tagged, item_ids, dated))
            meta["catalog"] = catalog_meta(facts, catalog is not None)
        oi.unpersist()
        ci.unpersist()
        return package(
            item_ids, nb, pop, config.popular_n, meta, alternatives=alts, catalog=facts,
            external_histories=external,
        )  # fmt: skip


# -- cleaning ----------------------------------------------------------------------------


def clean(raw: DataFrame, rules: ingest.CleaningRules) -> tuple[DataFrame, ingest.CleanReport]:
    """``training.stages.ingest.clean`` in Spark SQL: the same normalisation, the same reasons in
    the same order (each row counted once, for the first rule it breaks), one pass."""

    cols = set(raw.columns)
    types = {f.name: f.dataType for f in raw.schema.fields}
    df = raw
    for name in (ingest.CUSTOMER, ingest.ITEM, ingest.ORDER):
        if name in cols:
            df = df.withColumn(name, _id(F.col(name), types[name]))
    for name in (ingest.QUANTITY, ingest.PRICE, ingest.TOTAL):
        if name in cols:
            df = df.withColumn(name, F.col(name).cast(T.DoubleType()))
    if ingest.PRICE not in cols and ingest.TOTAL in cols:
        q = F.col(ingest.QUANTITY) if ingest.QUANTITY in cols else F.lit(1.0)
        df = df.withColumn(ingest.PRICE, F.col(ingest.TOTAL) / q).drop(ingest.TOTAL)
        cols = (cols - {ingest.TOTAL}) | {ingest.PRICE}
    elif ingest.TOTAL in cols:
        df = df.drop(ingest.TOTAL)
        cols -= {ingest.TOTAL}
    if ingest.TIMESTAMP in cols and isinstance(types[ingest.TIMESTAMP], T.IntegralType):
        nanos = F.col(ingest.TIMESTAMP).cast("long")
        df = df.withColumn(ingest.TIMESTAMP, F.timestamp_micros(F.floor(nanos / 1000)))
    elif ingest.TIMESTAMP in cols and not isinstance(
        types[ingest.TIMESTAMP], T.TimestampType | T.TimestampNTZType | T.DateType
    ):
        text = F.trim(F.col(ingest.TIMESTAMP).cast("string"))
        df = df.withColumn(
            ingest.TIMESTAMP,
            F.coalesce(
                F.to_timestamp(text),
                F.to_timestamp(text, "M/d/yyyy H:mm"),
                F.to_timestamp(text, "M/d/yyyy H:mm:ss"),
                F.to_timestamp(text, "d.M.yyyy H:mm"),
            ),
        )
    elif ingest.TIMESTAMP in cols:
        df = df.withColumn(ingest.TIMESTAMP, F.col(ingest.TIMESTAMP).cast(T.TimestampType()))
    if ingest.DESCRIPTION in cols:
        df = df.withColumn(
            ingest.DESCRIPTION,
            F.coalesce(_strip(F.col(ingest.DESCRIPTION).cast("string")), F.lit("")),
        )
    reasons: list[tuple[str, Column]] = [
        ("missing_customer", F.col(ingest.CUSTOMER).isNull()),
        ("missing_item", F.col(ingest.ITEM).isNull()),
        (
            "invalid_id",
            ~_valid(F.col(ingest.CUSTOMER), lay.MAX_CUSTOMER_ID_LENGTH)
            | ~_valid(F.col(ingest.ITEM), lay.MAX_ITEM_ID_LENGTH),
        ),
    ]
    if ingest.ORDER in cols and rules.cancelled_order_prefix:
        prefix = rules.cancelled_order_prefix
        reasons.append(
            ("cancelled_order", F.coalesce(F.col(ingest.ORDER).startswith(prefix), F.lit(False)))
        )
    if ingest.QUANTITY in cols:
        reasons.append(
            (
                "non_positive_or_missing_quantity",
                ~F.coalesce(F.col(ingest.QUANTITY) > 0, F.lit(False)),
            )
        )
    if ingest.PRICE in cols:
        reasons.append(
            ("non_positive_or_missing_price", ~F.coalesce(F.col(ingest.PRICE) > 0, F.lit(False)))
        )
    if ingest.TIMESTAMP in cols:
        reasons.append(("bad_timestamp", F.col(ingest.TIMESTAMP).isNull()))
    non_product = F.col(ingest.ITEM).isin(sorted(rules.non_product_items))
    if rules.non_product_pattern:
        import re

        try:
            re.compile(rules.non_product_pattern)
        except re.error as exc:
            raise InputError(
                f"bad non-product pattern {rules.non_product_pattern!r}: {exc}"
            ) from exc
        non_product = non_product | F.col(ingest.ITEM).rlike(
            f"(?i)^(?:{rules.non_product_pattern})$"
        )
    reasons.append(("non_product", F.coalesce(non_product, F.lit(False))))
    verdict = F.lit(None).cast("string")
    for name, broken in reversed(reasons):
        verdict = F.when(broken, F.lit(name)).otherwise(verdict)
    judged = df.withColumn("_dropped", verdict).persist()
    by_reason = {
        r["_dropped"]: int(r["count"]) for r in judged.groupBy("_dropped").count().collect()
    }
    report = ingest.CleanReport(rows_read=sum(by_reason.values()))
    for name, _ in reasons:
        report.dropped[name] = by_reason.get(name, 0)
    kept = judged.where(F.col("_dropped").isNull()).drop("_dropped")
    if rules.drop_duplicates:
        before = by_reason.get(None, 0)
        columns = [c for c in kept.columns if c != LINE]
        if LINE in kept.columns:  # the first of each set of duplicates, as pandas keeps
            kept = kept.groupBy(*columns).agg(F.min(LINE).alias(LINE))
        else:
            kept = kept.dropDuplicates(columns)
        report.dropped["exact_duplicate"] = before - kept.count()
    if ingest.QUANTITY not in cols:
        kept = kept.withColumn(ingest.QUANTITY, F.lit(1.0))
    if ingest.ORDER not in cols:
        # Without order ids, a customer's lines at one moment are one order.
        moment = [F.col(ingest.CUSTOMER)]
        if ingest.TIMESTAMP in cols:
            moment.append(F.col(ingest.TIMESTAMP).cast("string"))
        kept = kept.withColumn(ingest.ORDER, F.concat_ws("|", *moment))
    kept = kept.persist()
    if kept.isEmpty():
        raise InputError("no rows left after cleaning: " + "; ".join(report.lines()))
    judged.unpersist()
    return kept, report


def _strip(c: Column) -> Column:

    return F.regexp_replace(c, r"^\s+|\s+$", "")


def _id(c: Column, dtype: Any) -> Column:
    """``ingest._ids``: trimmed strings, float ids without their ``.0``, blanks missing."""

    if isinstance(dtype, T.FloatType | T.DoubleType):
        text = F.when(F.isnan(c), None).otherwise(c.cast("long").cast("string"))
    else:
        text = c.cast("string")
    text = F.regexp_replace(_strip(text), r"^(\d+)\.0+$", "$1")
    return F.when(text.isin("", "nan", "None", "<NA>"), None).otherwise(text)


def _valid(c: Column, max_length: int) -> Column:

    return F.coalesce(c.rlike(lay.ID_PATTERN) & (F.length(c) <= max_length), F.lit(False))


def _with_events(spark: SparkSession, raw: DataFrame, events: pd.DataFrame) -> DataFrame:
    """The file's lines and the live order events' lines, no order the file holds twice."""

    types = {f.name: f.dataType for f in raw.schema if f.name != LINE}
    events = events.reindex(columns=list(types))
    extra = from_pandas(spark, events).select(*[F.col(c).cast(t) for c, t in types.items()])
    if ingest.ORDER in raw.columns:
        extra = extra.join(raw.select(ingest.ORDER).distinct(), ingest.ORDER, "left_anti")
    if LINE in raw.columns:  # after the file's lines
        last = _one(raw.agg(F.max(LINE)))[0] or 0
        extra = extra.withColumn(LINE, F.monotonically_increasing_id() + F.lit(last + 1))
    return raw.unionByName(extra.select(*raw.columns))


# -- the stages ------------------------------------------------------------------------------


def _orders(tagged: DataFrame, dated: bool, half_life_days: float) -> DataFrame:
    """Per order: its customer and its weight, ``0.5 ** (age / half-life)`` as in
    ``matrices.order_weights`` (1 without timestamps or with the decay off)."""

    aggs = [F.min(ingest.CUSTOMER).alias(ingest.CUSTOMER)]
    if dated:
        aggs.append(F.max(F.unix_micros(F.col(ingest.TIMESTAMP))).alias("placed"))
    orders = tagged.groupBy(ingest.ORDER).agg(*aggs)
    if not dated or half_life_days <= 0:
        return orders.withColumn("w", F.lit(1.0))
    latest = _one(orders.agg(F.max("placed")))[0]
    age_days = (F.lit(latest) - F.col("placed")) / F.lit(86_400e6)
    return orders.withColumn("w", F.pow(F.lit(0.5), age_days / F.lit(half_life_days))).drop(
        "placed"
    )


def _order_pairs(oi: DataFrame) -> DataFrame:
    """Every pair i < j bought in one order: the orders' summed weight and their number."""

    a = oi.select(ingest.ORDER, "i", "w")
    b = oi.select(ingest.ORDER, F.col("i").alias("j"))
    return (
        a.join(b, ingest.ORDER)
        .where(F.col("i") < F.col("j"))
        .groupBy("i", "j")
        .agg(F.sum("w").alias("g"), F.count("*").alias("together"))
    )


def _both_ways(pairs: DataFrame, *cols: str) -> DataFrame:

    flipped = pairs.select(F.col("j").alias("i"), F.col("i").alias("j"), *cols)
    return pairs.select("i", "j", *cols).unionByName(flipped)


def _top(scored: DataFrame, k: int, by: str) -> DataFrame:
    """The ``k`` best ``by`` per item i (ties: the smaller j first)."""

    rank = Window.partitionBy("i").orderBy(F.col(by).desc(), F.col("j").asc())
    return scored.withColumn("_r", F.row_number().over(rank)).where(F.col("_r") <= k)


def _lists(rows: pd.DataFrame, n: int, k: int, score: str, count: str) -> Neighbours:
    """Collected (i, j, score, count, rank) rows as a ``Neighbours`` of n x k (-1 pads)."""
    idx = np.full((n, k), -1, np.int32)
    sc = np.zeros((n, k), np.float32)
    cnt = np.zeros((n, k), np.int64)
    if len(rows):
        i = rows["i"].to_numpy(np.int64)
        r = rows["_r"].to_numpy(np.int64) - 1
        idx[i, r] = rows["j"].to_numpy(np.int32)
        sc[i, r] = rows[score].to_numpy(np.float32)
        cnt[i, r] = rows[count].to_numpy(np.int64)
    return Neighbours(idx, sc, cnt)


def _complements(pairs: DataFrame, diag: DataFrame, n: int, top_n: int) -> Neighbours:
    """Cosine of the recency-weighted orders, the best ``top_n`` per item, with the orders
    bought together as evidence: ``neighbours.cooccurrence`` with ``pair_counts``."""

    gi = diag.select(F.col("i"), F.col("g").alias("gi"))
    gj = diag.select(F.col("i").alias("j"), F.col("g").alias("gj"))
    scored = (
        _both_ways(pairs, "g", "together")
        .join(F.broadcast(gi), "i")
        .join(F.broadcast(gj), "j")
        .withColumn(
            "score", F.col("g") / F.sqrt(F.greatest(F.col("gi") * F.col("gj"), F.lit(1e-24)))
        )
    )
    rows = _top(scored, top_n, "score").select("i", "j", "score", "together", "_r").toPandas()
    return _lists(rows, n, top_n, "score", "together")


def _als(ci: DataFrame, config: TrainConfig) -> DataFrame:
    """Unit item factors (``i``, ``f``) of ``pyspark.ml``'s implicit ALS on the confidence
    ``config.weighting`` names (binary, counts, or BM25 as ``matrices.weight``)."""

    users = ci.select(ingest.CUSTOMER).distinct()
    numbered = users.rdd.map(lambda r: r[0]).zipWithIndex().toDF([ingest.CUSTOMER, "u"])
    rated = ci.join(numbered, ingest.CUSTOMER)
    if config.weighting == "binary":
        rated = rated.withColumn("r", F.lit(1.0))
    elif config.weighting == "counts":
        rated = rated.withColumn("r", F.col("n").cast("double"))
    else:
        n_users = users.count()
        df = ci.groupBy("i").agg(F.count("*").alias("df"))
        rows = ci.groupBy(ingest.CUSTOMER).agg(F.sum("n").alias("len"))
        avg = _one(rows.agg(F.avg("len")))[0]
        idf = F.greatest(F.lit(math.log(n_users)) - F.log1p(F.col("df")), F.lit(1e-3))
        norm = F.lit(1.0 - BM25_B) + F.lit(BM25_B) * F.col("len") / F.lit(avg)
        tf = F.col("n") * F.lit(BM25_K1 + 1.0) / (F.lit(BM25_K1) * norm + F.col("n"))
        rated = rated.join(df, "i").join(rows, ingest.CUSTOMER).withColumn("r", tf * idf)
    als = ALS(
        rank=config.als.factors,
        maxIter=config.als.iterations,
        regParam=config.als.regularization,
        alpha=config.als.alpha,
        implicitPrefs=True,
        seed=config.als.random_state,
        userCol="u",
        itemCol="i",
        ratingCol="r",
        coldStartStrategy="drop",
    )
    model = als.fit(rated.select("u", "i", "r"))
    norm2 = F.aggregate(F.col("features"), F.lit(0.0).cast("double"), lambda acc, x: acc + x * x)
    return model.itemFactors.select(
        F.col("id").alias("i"),
        F.transform(F.col("features"), lambda x: x / F.greatest(F.sqrt(norm2), F.lit(1e-12))).alias(
            "f"
        ),
    )


def _alternatives(
    ci: DataFrame, pairs: DataFrame, diag: DataFrame, factors: DataFrame, n: int, top_n: int
) -> Neighbours:
    """``neighbours.alternatives`` in Spark SQL: items the same customers buy but seldom in
    one order, scored by the mean of the customer cosine and the ALS factor cosine over
    each item's shortlist, with the customers shared as evidence."""

    per_customer = ci.groupBy(ingest.CUSTOMER).agg(F.count("*").alias("k"))
    broad = per_customer.where(F.col("k") > MAX_CUSTOMER_ITEMS).select(ingest.CUSTOMER)
    x = ci.select(ingest.CUSTOMER, "i").join(broad, ingest.CUSTOMER, "left_anti")
    buyers = x.groupBy("i").agg(F.count("*").alias("b"))
    shared = (
        x.join(x.select(ingest.CUSTOMER, F.col("i").alias("j")), ingest.CUSTOMER)
        .where(F.col("i") < F.col("j"))
        .groupBy("i", "j")
        .agg(F.count("*").alias("shared"))
        .where(F.col("shared") >= MIN_SHARED)
        .join(pairs.select("i", "j", "together"), ["i", "j"], "left")
        .fillna({"together": 0})
    )
    oi_ = diag.select("i", F.col("orders").alias("oi"))
    oj_ = diag.select(F.col("i").alias("j"), F.col("orders").alias("oj"))
    bi = buyers.select("i", F.col("b").alias("bi"))
    bj = buyers.select(F.col("i").alias("j"), F.col("b").alias("bj"))
    scored = (
        _both_ways(shared, "shared", "together")
        .join(F.broadcast(oi_), "i")
        .join(F.broadcast(oj_), "j")
        .where(
            F.col("together") / F.greatest(F.least(F.col("oi"), F.col("oj")), F.lit(1))
            <= MAX_TOGETHER
        )
        .join(F.broadcast(bi), "i")
        .join(F.broadcast(bj), "j")
        .withColumn(
            "cos_c",
            F.col("shared")
            / F.sqrt(F.greatest(F.col("bi"), F.lit(1)) * F.greatest(F.col("bj"), F.lit(1))),
        )
    )
    short = _top(scored, SHORTLIST * top_n, "cos_c").drop("_r")
    fi = factors.select("i", F.col("f").alias("fi"))
    fj = factors.select(F.col("i").alias("j"), F.col("f").alias("fj"))
    dot = F.aggregate(
        F.zip_with(F.col("fi"), F.col("fj"), lambda a, b: a * b),
        F.lit(0.0).cast("double"),
        lambda acc, v: acc + v,
    )
    rescored = (
        short.join(fi, "i", "left")
        .join(fj, "j", "left")
        .withColumn("cos_als", F.greatest(F.coalesce(dot, F.lit(0.0)), F.lit(0.0)))
        .withColumn("score", F.lit(0.5) * (F.col("cos_c") + F.col("cos_als")))
    )
    rows = _top(rescored, top_n, "score").select("i", "j", "score", "shared", "_r").toPandas()
    return _lists(rows, n, top_n, "score", "shared")


def _derived_catalog(tagged: DataFrame, item_ids: list[str], dated: bool) -> pd.DataFrame:
    """``catalog.from_purchases``: the latest non-empty description and the median price
    of the item's last ``RECENT_DAYS`` days of sales."""

    out = pd.DataFrame({"item_id": item_ids, "title": "", "price": np.nan})
    cols = set(tagged.columns)
    if dated:
        at = F.unix_micros(F.col(ingest.TIMESTAMP))
    else:
        at = F.col(LINE) if LINE in cols else F.monotonically_increasing_id()
    if ingest.DESCRIPTION in cols:
        named = tagged.where(F.col(ingest.DESCRIPTION) != "").withColumn("_t", at)
        titles = named.groupBy("i").agg(F.max_by(ingest.DESCRIPTION, "_t").alias("t")).toPandas()
        out.loc[titles["i"].to_numpy(), "title"] = titles["t"].to_numpy()
    if ingest.PRICE in cols:
        priced = tagged
        if dated:
            last = F.max("_t").over(Window.partitionBy("i"))
            priced = (
                tagged.withColumn("_t", at)
                .withColumn("_last", last)
                .where(F.col("_t") >= F.col("_last") - F.lit(RECENT_DAYS * 86_400 * 10**6))
            )
        medians = priced.groupBy("i").agg(F.median(ingest.PRICE).alias("p")).toPandas()
        out.loc[medians["i"].to_numpy(), "price"] = medians["p"].to_numpy(np.float64)
    out["category"] = None
    out["available"] = True
    return out


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
        self, connection: dict[str, Any], layout: lay.Layout, version: str, erased: frozenset[str]
    ) -> dict[int, int]:
        def write_partition(rows: Iterator[Any]) -> Iterator[tuple[int, int]]:
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
                    chunk[row[0]] = lay.encode_history(list(row[1]), list(row[2]), list(row[3]))
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
        return {int(b): int(k) for b, k in written}


# -- pandas at the edges ------------------------------------------------------------------------


def from_pandas(spark: SparkSession, frame: pd.DataFrame) -> DataFrame:
    """Clean lines in the local engine's form (categoricals, UTC timestamps) as Spark's."""
    plain = pd.DataFrame(
        {
            c: frame[c].astype(str).astype(object).where(frame[c].notna(), None)
            if isinstance(frame[c].dtype, pd.CategoricalDtype)
            else frame[c]
            for c in frame.columns
            if c in STD or c == ingest.TOTAL
        }
    )
    return spark.createDataFrame(plain)


def to_pandas(frame: DataFrame) -> pd.DataFrame:
    """Spark's clean lines in the local engine's form: what ``ingest.clean`` returns, in
    the file's order."""
    if LINE in frame.columns:
        frame = frame.orderBy(LINE).drop(LINE)
    out = frame.toPandas()
    for c in (ingest.CUSTOMER, ingest.ITEM, ingest.ORDER, ingest.DESCRIPTION):
        if c in out:
            values = out[c].astype(str)
            out[c] = pd.Categorical(values, categories=sorted(values.unique()))
    if ingest.TIMESTAMP in out:
        stamps = pd.to_datetime(out[ingest.TIMESTAMP])
        out[ingest.TIMESTAMP] = (
            stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
        )
    for c in (ingest.QUANTITY, ingest.PRICE):
        if c in out:
            out[c] = out[c].astype(np.float64)
    return out


def _one(frame: DataFrame) -> Any:
    """The one row of an aggregate."""
    row = frame.first()
    assert row is not None
    return row


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
