"""Read and clean in Spark SQL: the same rules as ``training.stages.ingest.clean`` and the
same per-reason counts, in one pass; live order events folded in; the catalog derived
from the purchases."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsvc import model as lay
from training.engines.spark.frames import LINE, from_pandas, one_value
from training.errors import InputError
from training.stages import ingest
from training.stages.catalog import RECENT_DAYS


def clean(raw: DataFrame, rules: ingest.CleaningRules) -> tuple[DataFrame, ingest.CleanReport]:
    """``training.stages.ingest.clean`` in Spark SQL: the same normalisation, the same reasons in
    the same order (each row counted once, for the first rule it breaks), one pass."""

    cols = set(raw.columns)
    types = {f.name: f.dataType for f in raw.schema.fields}
    df = raw
    for name in (ingest.CUSTOMER, ingest.ITEM, ingest.ORDER):
        if name in cols:
            df = df.withColumn(name, as_id(F.col(name), types[name]))
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
            F.coalesce(stripped(F.col(ingest.DESCRIPTION).cast("string")), F.lit("")),
        )
    reasons: list[tuple[str, Column]] = [
        ("missing_customer", F.col(ingest.CUSTOMER).isNull()),
        ("missing_item", F.col(ingest.ITEM).isNull()),
        (
            "invalid_id",
            ~valid_id_col(F.col(ingest.CUSTOMER), lay.MAX_CUSTOMER_ID_LENGTH)
            | ~valid_id_col(F.col(ingest.ITEM), lay.MAX_ITEM_ID_LENGTH),
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


def stripped(c: Column) -> Column:

    return F.regexp_replace(c, r"^\s+|\s+$", "")


def as_id(c: Column, dtype: Any) -> Column:
    """``ingest._ids``: trimmed strings, float ids without their ``.0``, blanks missing."""

    if isinstance(dtype, T.FloatType | T.DoubleType):
        text = F.when(F.isnan(c), None).otherwise(c.cast("long").cast("string"))
    else:
        text = c.cast("string")
    text = F.regexp_replace(stripped(text), r"^(\d+)\.0+$", "$1")
    return F.when(text.isin("", "nan", "None", "<NA>"), None).otherwise(text)


def valid_id_col(c: Column, max_length: int) -> Column:

    return F.coalesce(c.rlike(lay.ID_PATTERN) & (F.length(c) <= max_length), F.lit(False))


def with_events(spark: SparkSession, raw: DataFrame, events: pd.DataFrame) -> DataFrame:
    """The file's lines and the live order events' lines, no order the file holds twice."""

    types = {f.name: f.dataType for f in raw.schema if f.name != LINE}
    events = events.reindex(columns=list(types))
    extra = from_pandas(spark, events).select(*[F.col(c).cast(t) for c, t in types.items()])
    if ingest.ORDER in raw.columns:
        extra = extra.join(raw.select(ingest.ORDER).distinct(), ingest.ORDER, "left_anti")
    if LINE in raw.columns:  # after the file's lines
        last = one_value(raw.agg(F.max(LINE)))[0] or 0
        extra = extra.withColumn(LINE, F.monotonically_increasing_id() + F.lit(last + 1))
    return raw.unionByName(extra.select(*raw.columns))


def derived_catalog(tagged: DataFrame, item_ids: list[str], dated: bool) -> pd.DataFrame:
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
