"""The catalog: title, category, price and availability of every item the model knows.

From a catalog file when the store has one (CSV or Parquet), else derived from the
purchase lines: the latest description as title, the median unit price of the item's
last 90 days of sales as price. Published with the model, so a suggestion carries what a
cart widget shows without a second lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.errors import InputError
from training.ingest import DESCRIPTION, ITEM, PRICE, TIMESTAMP, _ids, read_table
from training.matrices import codes_of

REQUIRED = ("item_id", "title", "category", "price", "available")
OPTIONAL = ("brand", "margin", "cost", "image_url", "url")
RECENT_DAYS = 90
_TRUE = {"1", "true", "yes", "y", "t", "available", "in stock"}
_FALSE = {"0", "false", "no", "n", "f", "unavailable", "out of stock"}


@dataclass
class CatalogReport:
    rows_read: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    source: str = "purchases"

    def lines(self) -> list[str]:
        out = [f"catalog from {self.source}: {self.rows_read:,} rows"]
        out += [f"  skipped {n:>7,}  {why.replace('_', ' ')}" for why, n in self.skipped.items()]
        return out


def read_catalog(path: Path) -> tuple[pd.DataFrame, CatalogReport]:
    """Reads and validates a catalog file; malformed rows are counted and skipped.

    A file without the required columns is refused as a whole, before anything is trained
    or published.
    """
    raw = read_table(path, what="catalog file")
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise InputError(
            f"catalog {path.name} lacks the column(s) {', '.join(missing)}; "
            f"required: {', '.join(REQUIRED)} (optional: {', '.join(OPTIONAL)})"
        )
    report = CatalogReport(rows_read=len(raw), source=path.name)
    df = pd.DataFrame({"item_id": _ids(raw["item_id"])})
    df["title"] = raw["title"].astype(str).where(raw["title"].notna(), "").str.strip()
    df["category"] = raw["category"].astype(str).where(raw["category"].notna(), "").str.strip()
    df["price"] = pd.to_numeric(raw["price"], errors="coerce")
    df["available"] = raw["available"].map(_flag)
    for col in OPTIONAL:
        if col in raw.columns:
            df[col] = (
                pd.to_numeric(raw[col], errors="coerce")
                if col in ("margin", "cost")
                else raw[col].astype(str).where(raw[col].notna(), "")
            )

    def skip(reason: str, mask: pd.Series) -> None:
        nonlocal df
        bad = mask.to_numpy(dtype=bool)
        if bad.any():
            report.skipped[reason] = int(bad.sum())
        df = df.loc[~bad]

    skip("missing_item_id", df["item_id"] == "")
    skip("bad_price", ~(df["price"] >= 0))
    skip("bad_available", df["available"].isna())
    skip("duplicate_item_id", df["item_id"].duplicated(keep="first"))
    df["category"] = df["category"].replace("", None)
    return df.reset_index(drop=True), report


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def from_purchases(frame: pd.DataFrame) -> pd.DataFrame:
    """Title and current price from the purchase lines themselves (vectorised by item):
    the latest non-empty description, and the median unit price of the item's last
    ``RECENT_DAYS`` days of sales."""
    codes, ids = codes_of(frame[ITEM])
    out = pd.DataFrame({"item_id": ids})
    lines = pd.DataFrame({"i": codes})
    if TIMESTAMP in frame:
        lines["t"] = frame[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
        order = np.argsort(lines["t"].to_numpy(), kind="stable")
    else:
        order = np.arange(len(frame))
    out["title"] = ""
    if DESCRIPTION in frame:
        text = frame[DESCRIPTION].astype(str).to_numpy()[order]
        item = codes[order]
        named = text != ""
        latest = pd.Series(text[named]).groupby(item[named]).last()
        out.loc[latest.index.to_numpy(), "title"] = latest.to_numpy()
    out["price"] = np.nan
    if PRICE in frame:
        lines["p"] = frame[PRICE].to_numpy(dtype=np.float64)
        recent = lines
        if TIMESTAMP in frame:
            last = lines.groupby("i")["t"].transform("max")
            recent = lines[lines["t"] >= last - RECENT_DAYS * 86_400 * 10**9]
        median = recent.groupby("i")["p"].median()
        out.loc[median.index.to_numpy(), "price"] = median.to_numpy()
    out["category"] = None
    out["available"] = True
    return out


def align(
    item_ids: Sequence[str], catalog: pd.DataFrame | None, derived: pd.DataFrame
) -> list[dict[str, Any]]:
    """One entry per model item, in model order: the catalog's facts, else derived ones.

    An item the catalog does not list keeps its derived title and price; it stays
    available, since the catalog cannot say otherwise.
    """
    ids = pd.Index([str(i) for i in item_ids])
    base = derived.drop_duplicates("item_id").set_index("item_id").reindex(ids)
    listed = np.zeros(len(ids), bool)
    given = None
    if catalog is not None:
        given = catalog.drop_duplicates("item_id").set_index("item_id").reindex(ids)
        listed = ids.isin(catalog["item_id"])
    base_rows = base.to_dict("records")
    given_rows = given.to_dict("records") if given is not None else None
    out: list[dict[str, Any]] = []
    for n, row_base in enumerate(base_rows):
        source = given_rows[n] if given_rows is not None and listed[n] else row_base
        row = {str(k): _plain(v) for k, v in source.items()}
        row = {k: v for k, v in row.items() if v not in (None, "")}
        row.setdefault("title", "")
        row.setdefault("available", True)
        out.append(row)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, float):
        return round(value, 4)
    return value
