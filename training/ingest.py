"""Stage 1: read purchase lines from CSV or Parquet and clean what real exports contain."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsvc import layout as lay
from training.errors import InputError

# The standard columns every later stage uses, whatever the export called them.
CUSTOMER, ITEM, ORDER, QUANTITY, TIMESTAMP, PRICE, DESCRIPTION = (
    "customer",
    "item",
    "order",
    "quantity",
    "timestamp",
    "price",
    "description",
)
TOTAL = "total"
"""A line total (quantity times unit price), as many exports give it: read, then turned into
the unit price (total / quantity) and dropped."""

# Postage, fees, manual adjustments, vouchers: lines that are not products.
DEFAULT_NON_PRODUCT_PATTERN = (
    r"POST|POSTAGE|SHIPPING|CARRIAGE|DOT|FEE|BANK CHARGES|AMAZONFEE|DISCOUNT"
    r"|ADJUST(MENT)?|PADS|CRUK|gift_\d+_\d+"
)
# Online Retail also codes manual lines with single letters (M, D, S, B) and C2 (carriage),
# which would be real item ids in another store, so only its preset drops them.
ONLINE_RETAIL_NON_PRODUCT_PATTERN = DEFAULT_NON_PRODUCT_PATTERN + r"|M|D|S|B|C2"


@dataclass(frozen=True)
class Columns:
    """Which export column holds what; only customer and item are required."""

    customer: str
    item: str
    order: str | None = None
    quantity: str | None = None
    timestamp: str | None = None
    price: str | None = None
    description: str | None = None
    total: str | None = None
    """The line-total column, when the export has no unit price (ignored with ``price``)."""

    def mapping(self) -> dict[str, str]:
        pairs = {
            CUSTOMER: self.customer,
            ITEM: self.item,
            ORDER: self.order,
            QUANTITY: self.quantity,
            TIMESTAMP: self.timestamp,
            PRICE: self.price,
            DESCRIPTION: self.description,
            TOTAL: None if self.price else self.total,
        }
        return {std: col for std, col in pairs.items() if col}


PRESETS: dict[str, Columns] = {
    "online-retail": Columns(
        customer="CustomerID",
        item="StockCode",
        order="InvoiceNo",
        quantity="Quantity",
        timestamp="InvoiceDate",
        price="UnitPrice",
        description="Description",
    ),
}


PRESET_NON_PRODUCT_PATTERNS: dict[str, str] = {"online-retail": ONLINE_RETAIL_NON_PRODUCT_PATTERN}


@dataclass(frozen=True)
class CleaningRules:
    cancelled_order_prefix: str | None = "C"
    non_product_pattern: str | None = DEFAULT_NON_PRODUCT_PATTERN
    non_product_items: frozenset[str] = frozenset()
    drop_duplicates: bool = True


@dataclass
class CleanReport:
    rows_read: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def rows_kept(self) -> int:
        return self.rows_read - sum(self.dropped.values())

    def lines(self) -> list[str]:
        out = [f"rows read: {self.rows_read:,}"]
        out += [
            f"  dropped {n:>9,}  {reason.replace('_', ' ')}" for reason, n in self.dropped.items()
        ]
        out.append(f"rows kept: {self.rows_kept:,}")
        return out


def count_rows(path: Path) -> int | None:
    """Lines in a purchases file, cheaply: Parquet's metadata, or a CSV's size at 24 bytes
    a line (short lines, the high side); None when the file cannot be looked at."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        size = path.stat().st_size
    except Exception:  # unreadable: the reader says why, with exit code 2
        return None
    packed = 4 if path.suffix.lower() in (".gz", ".bz2") else 1
    return size * packed // 24


def read_purchases(path: Path, columns: Columns) -> pd.DataFrame:
    """Reads the file and renames its columns to the standard names.

    Text columns arrive dictionary-encoded (pandas categoricals): tens of millions of
    lines hold integer codes and one string per distinct id, not one Python object a row.
    """
    mapping = columns.mapping()
    raw = read_table(
        path, list(dict.fromkeys(mapping.values())), what="purchases file", categorical=True
    )
    return pd.DataFrame({std: raw[col] for std, col in mapping.items()})


def read_table(
    path: Path, wanted: list[str] | None = None, what: str = "file", categorical: bool = False
) -> pd.DataFrame:
    """A CSV(.gz), TSV or Parquet file: the ``wanted`` columns (all when None), as read.

    CSV cells stay text: ids such as "00123" must not turn into numbers. With
    ``categorical``, text columns are read dictionary-encoded, through pyarrow.
    """
    if not path.exists():
        raise InputError(f"{what} not found: {path}")
    if path.is_dir():
        raise InputError(f"{what} path is a directory, not a file: {path}")
    suffixes = "".join(path.suffixes[-2:]).lower()
    try:
        if suffixes.endswith((".parquet", ".pq")):
            if wanted is not None:
                _require(_parquet_columns(path), wanted, path)
            if categorical:
                return _read_parquet_encoded(path, wanted)
            return pd.read_parquet(path, columns=wanted)
        if suffixes.endswith((".csv", ".csv.gz", ".tsv", ".txt", ".csv.bz2")):
            sep = "\t" if ".tsv" in suffixes else ","
            if wanted is not None:
                _require(list(pd.read_csv(path, sep=sep, nrows=0).columns), wanted, path)
            if categorical:
                return _read_csv_encoded(path, sep, wanted)
            return pd.read_csv(path, sep=sep, usecols=wanted, dtype=str, keep_default_na=False)
    except InputError:
        raise
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"could not read {path}: {exc}") from exc
    except Exception as exc:  # pyarrow raises its own ArrowInvalid for malformed files
        if type(exc).__module__.startswith("pyarrow"):
            raise InputError(f"could not read {path}: {exc}") from exc
        raise
    raise InputError(f"unknown file type {path.name!r}: expected .csv(.gz) or .parquet")


def _encoded_frame(table: Any) -> pd.DataFrame:
    import pyarrow as pa

    columns = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = col.dictionary_encode()
        columns[name] = col
    return pa.table(columns).to_pandas()  # type: ignore[no-any-return]


def _read_parquet_encoded(path: Path, wanted: list[str] | None) -> pd.DataFrame:
    import pyarrow.parquet as pq

    return _encoded_frame(pq.read_table(path, columns=wanted))


def _read_csv_encoded(path: Path, sep: str, wanted: list[str] | None) -> pd.DataFrame:
    import pyarrow as pa
    from pyarrow import csv

    names = wanted if wanted is not None else list(pd.read_csv(path, sep=sep, nrows=0).columns)
    table = csv.read_csv(
        path,
        parse_options=csv.ParseOptions(delimiter=sep),
        convert_options=csv.ConvertOptions(
            include_columns=names,
            column_types={n: pa.string() for n in names},
            strings_can_be_null=False,
        ),
    )
    return _encoded_frame(table)


def _parquet_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise InputError(f"not a readable Parquet file: {path}: {exc}") from exc


def _require(available: list[str], wanted: list[str], path: Path) -> None:
    missing = [c for c in wanted if c not in available]
    if missing:
        raise InputError(
            f"{path.name}: missing column(s) {', '.join(missing)}; "
            f"the file has {', '.join(map(str, available))}"
        )


def _ids(values: pd.Series) -> pd.Series:
    """Ids as trimmed strings; float-typed ids (17850.0, from a NaN-holding column) lose .0."""
    if pd.api.types.is_float_dtype(values):
        ints = values.astype("Int64")
        out = ints.astype(str).where(ints.notna(), "")
    else:
        out = values.astype(str).where(values.notna(), "")
    out = out.str.strip().replace({"nan": "", "None": "", "<NA>": ""})
    # The same ids read from CSV arrive as text: "17850.0" must match "17850".
    return out.str.replace(r"^(\d+)\.0+$", r"\1", regex=True)


def id_codes(values: pd.Series) -> pd.Series:
    """Ids as a categorical of normalised strings, categories sorted; missing ids are NaN.

    The string work runs once per distinct value, never once per line.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    normal = _ids(pd.Series(np.asarray(uniques))).to_numpy(dtype=object)
    categories = np.array(sorted({v for v in normal if v}), dtype=object)
    lookup = pd.Index(categories).get_indexer(normal).astype(np.int32)
    row_codes = np.where(codes >= 0, lookup[np.maximum(codes, 0)], -1).astype(np.int32)
    cat = pd.Categorical.from_codes(row_codes, categories=pd.Index(categories, dtype=object))
    return pd.Series(cat, index=values.index)


def _per_value(values: pd.Series, convert: Any) -> pd.Series:
    """Applies a vectorised conversion to each distinct value of a categorical only."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        cats = convert(pd.Series(values.cat.categories))
        codes = values.cat.codes.to_numpy()
        out = cats.iloc[np.maximum(codes, 0)].reset_index(drop=True)
        out = out.where(pd.Series(codes >= 0))
        out.index = values.index
        return pd.Series(out)
    return pd.Series(convert(values))


def _numbers(values: pd.Series) -> pd.Series:
    return _per_value(values, lambda v: pd.to_numeric(v, errors="coerce"))


def _timestamps(values: pd.Series) -> pd.Series:
    return _per_value(
        values, lambda v: pd.to_datetime(v, errors="coerce", utc=True, format="mixed")
    )


def _valid_ids(ids: pd.Series, max_length: int) -> pd.Series:
    return ids.str.fullmatch(lay.ID_PATTERN[1:-1]).fillna(False) & (ids.str.len() <= max_length)


def _category_mask(values: pd.Series, test: Any) -> np.ndarray:
    """Row mask of a categorical from a boolean test over its categories (NaN: False)."""
    cats = np.asarray(test(pd.Series(values.cat.categories)), dtype=bool)
    codes = values.cat.codes.to_numpy()
    return np.where(codes >= 0, cats[np.maximum(codes, 0)], False)


def clean(frame: pd.DataFrame, rules: CleaningRules) -> tuple[pd.DataFrame, CleanReport]:
    """Drops unusable rows, counting each reason once, in a fixed order."""
    report = CleanReport(rows_read=len(frame))
    df = frame.copy()
    df[CUSTOMER] = id_codes(df[CUSTOMER])
    df[ITEM] = id_codes(df[ITEM])
    if ORDER in df:
        df[ORDER] = id_codes(df[ORDER])
    if QUANTITY in df:
        df[QUANTITY] = _numbers(df[QUANTITY])
    if PRICE in df:
        df[PRICE] = _numbers(df[PRICE])
    elif TOTAL in df:
        total = _numbers(df.pop(TOTAL))
        df[PRICE] = total / df[QUANTITY] if QUANTITY in df else total
    if TIMESTAMP in df:
        df[TIMESTAMP] = _timestamps(df[TIMESTAMP])
    if DESCRIPTION in df:
        df[DESCRIPTION] = _per_value(
            df[DESCRIPTION], lambda v: v.astype(str).where(v.notna(), "").str.strip()
        ).astype("category")

    def drop(reason: str, mask: pd.Series | np.ndarray) -> None:
        nonlocal df
        mask_arr = np.asarray(mask, dtype=bool)
        report.dropped[reason] = int(mask_arr.sum())
        df = df.loc[~mask_arr]

    drop("missing_customer", df[CUSTOMER].isna())
    drop("missing_item", df[ITEM].isna())
    # Ids the API could never be asked about (too long, control characters) are refused
    # here, by the same rule, rather than published unreachable.
    drop(
        "invalid_id",
        _category_mask(df[CUSTOMER], lambda c: ~_valid_ids(c, lay.MAX_CUSTOMER_ID_LENGTH))
        | _category_mask(df[ITEM], lambda c: ~_valid_ids(c, lay.MAX_ITEM_ID_LENGTH)),
    )
    if ORDER in df and rules.cancelled_order_prefix:
        prefix = rules.cancelled_order_prefix
        drop("cancelled_order", _category_mask(df[ORDER], lambda c: c.str.startswith(prefix)))
    if QUANTITY in df:
        drop("non_positive_or_missing_quantity", ~(df[QUANTITY] > 0))
    if PRICE in df:
        drop("non_positive_or_missing_price", ~(df[PRICE] > 0))
    if TIMESTAMP in df:
        drop("bad_timestamp", df[TIMESTAMP].isna())
    non_product = _category_mask(df[ITEM], lambda c: c.isin(rules.non_product_items))
    if rules.non_product_pattern:
        try:
            pattern = re.compile(rules.non_product_pattern, re.IGNORECASE)
        except re.error as exc:
            raise InputError(
                f"bad non-product pattern {rules.non_product_pattern!r}: {exc}"
            ) from exc
        non_product |= _category_mask(
            df[ITEM], lambda c: c.map(lambda s: pattern.fullmatch(s) is not None).astype(bool)
        )
    drop("non_product", non_product)
    if rules.drop_duplicates:
        drop("exact_duplicate", df.duplicated(keep="first"))

    for col in (CUSTOMER, ITEM, ORDER):
        if col in df:
            df[col] = df[col].cat.remove_unused_categories()
    if df.empty:
        raise InputError("no rows left after cleaning: " + "; ".join(report.lines()))
    if QUANTITY not in df:
        df[QUANTITY] = 1.0
    if ORDER not in df:
        # Without order ids, a customer's lines at one moment are one order.
        keys = [df[CUSTOMER].cat.codes] + ([df[TIMESTAMP]] if TIMESTAMP in df else [])
        number = df.groupby(keys, sort=True, observed=True).ngroup().to_numpy()
        df[ORDER] = pd.Categorical.from_codes(
            number, categories=pd.Index([f"o{i}" for i in range(int(number.max()) + 1)])
        )
    return df.reset_index(drop=True), report
