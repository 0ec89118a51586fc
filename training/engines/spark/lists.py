"""Complements and alternatives in Spark SQL (pair counts per order and per customer,
scored as the local engine scores them), and ALS item factors (``pyspark.ml``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pyspark.ml.recommendation import ALS
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from training.engines.local import TrainConfig
from training.engines.spark.frames import one_value
from training.neighbours.base import Neighbours
from training.stages import ingest

MAX_CUSTOMER_ITEMS = 2_000
"""Customers with more distinct items than this (resellers) make no alternatives, as in
``training.neighbours.alternatives.alternatives``."""

BM25_K1, BM25_B = 100.0, 0.8
"""``training.stages.matrices.weight``'s BM25, as ``implicit.nearest_neighbours.bm25_weight``."""


MIN_SHARED = 2


MAX_TOGETHER = 0.05


SHORTLIST = 4


def order_weights(tagged: DataFrame, dated: bool, half_life_days: float) -> DataFrame:
    """Per order: its customer and its weight, ``0.5 ** (age / half-life)`` as in
    ``matrices.order_weights`` (1 without timestamps or with the decay off)."""

    aggs = [F.min(ingest.CUSTOMER).alias(ingest.CUSTOMER)]
    if dated:
        aggs.append(F.max(F.unix_micros(F.col(ingest.TIMESTAMP))).alias("placed"))
    orders = tagged.groupBy(ingest.ORDER).agg(*aggs)
    if not dated or half_life_days <= 0:
        return orders.withColumn("w", F.lit(1.0))
    latest = one_value(orders.agg(F.max("placed")))[0]
    age_days = (F.lit(latest) - F.col("placed")) / F.lit(86_400e6)
    return orders.withColumn("w", F.pow(F.lit(0.5), age_days / F.lit(half_life_days))).drop(
        "placed"
    )


def order_pairs(oi: DataFrame) -> DataFrame:
    """Every pair i < j bought in one order: the orders' summed weight and their number."""

    a = oi.select(ingest.ORDER, "i", "w")
    b = oi.select(ingest.ORDER, F.col("i").alias("j"))
    return (
        a.join(b, ingest.ORDER)
        .where(F.col("i") < F.col("j"))
        .groupBy("i", "j")
        .agg(F.sum("w").alias("g"), F.count("*").alias("together"))
    )


def both_ways(pairs: DataFrame, *cols: str) -> DataFrame:

    flipped = pairs.select(F.col("j").alias("i"), F.col("i").alias("j"), *cols)
    return pairs.select("i", "j", *cols).unionByName(flipped)


def top_per(scored: DataFrame, k: int, by: str) -> DataFrame:
    """The ``k`` best ``by`` per item i (ties: the smaller j first)."""

    rank = Window.partitionBy("i").orderBy(F.col(by).desc(), F.col("j").asc())
    return scored.withColumn("_r", F.row_number().over(rank)).where(F.col("_r") <= k)


def neighbour_lists(rows: pd.DataFrame, n: int, k: int, score: str, count: str) -> Neighbours:
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


def complement_lists(pairs: DataFrame, diag: DataFrame, n: int, top_n: int) -> Neighbours:
    """Cosine of the recency-weighted orders, the best ``top_n`` per item, with the orders
    bought together as evidence: ``neighbours.cooccurrence`` with ``pair_counts``."""

    gi = diag.select(F.col("i"), F.col("g").alias("gi"))
    gj = diag.select(F.col("i").alias("j"), F.col("g").alias("gj"))
    scored = (
        both_ways(pairs, "g", "together")
        .join(F.broadcast(gi), "i")
        .join(F.broadcast(gj), "j")
        .withColumn(
            "score", F.col("g") / F.sqrt(F.greatest(F.col("gi") * F.col("gj"), F.lit(1e-24)))
        )
    )
    rows = top_per(scored, top_n, "score").select("i", "j", "score", "together", "_r").toPandas()
    return neighbour_lists(rows, n, top_n, "score", "together")


def als_factors(ci: DataFrame, config: TrainConfig) -> DataFrame:
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
        avg = one_value(rows.agg(F.avg("len")))[0]
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


def alternative_lists(
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
        both_ways(shared, "shared", "together")
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
    short = top_per(scored, SHORTLIST * top_n, "cos_c").drop("_r")
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
    rows = top_per(rescored, top_n, "score").select("i", "j", "score", "shared", "_r").toPandas()
    return neighbour_lists(rows, n, top_n, "score", "shared")
