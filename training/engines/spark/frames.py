"""Between Spark and pandas: frames both ways (Arrow), one value, an error's first line."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from training.stages import ingest

LINE = "_line"
"""A read line's place in its file (Spark's ``monotonically_increasing_id``: increasing
with the file's order, partition by partition)."""


STD = (
    ingest.CUSTOMER,
    ingest.ITEM,
    ingest.ORDER,
    ingest.QUANTITY,
    ingest.TIMESTAMP,
    ingest.PRICE,
    ingest.DESCRIPTION,
)


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


def one_value(frame: DataFrame) -> Any:
    """The one row of an aggregate."""
    row = frame.first()
    assert row is not None
    return row


def first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
