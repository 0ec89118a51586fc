"""Stage 1: read purchase lines from CSV or Parquet and clean what real exports contain."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsvc import model as lay
from training.errors import InputError
from training.stages import parsing

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
STATUS, CANCELLED_AT = "status", "cancelled_at"
"""An order's status (a platform's financial or order status), and a cancellation time:
read only to drop refunded and cancelled orders, then dropped themselves."""
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
    status: str | None = None
    """The order status column (refunded and cancelled orders are dropped by it)."""
    cancelled_at: str | None = None
    """A column that is set on cancelled orders only (Shopify's ``Cancelled at``)."""
    item_fallback: str | None = None
    """Where the item column is blank (a product without a SKU), this column's value."""

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
            STATUS: self.status,
            CANCELLED_AT: self.cancelled_at,
        }
        return {std: col for std, col in pairs.items() if col}

    def column_of(self, std: str) -> str:
        """The export's name of a standard column (for messages)."""
        return self.mapping().get(std, std)


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
    # Shopify's orders export (Admin > Orders > Export): one row per line item, the
    # order-level fields (Email, Financial Status, Paid at, Cancelled at...) on its first.
    "shopify": Columns(
        customer="Email",
        item="Lineitem sku",
        order="Name",
        quantity="Lineitem quantity",
        timestamp="Created at",
        price="Lineitem price",
        description="Lineitem name",
        status="Financial Status",
        cancelled_at="Cancelled at",
        item_fallback="Lineitem name",
    ),
    # WooCommerce's Customer/Order/Coupon Export, "one row per item" (the order_* and
    # item_* keys it documents as stable); item_total is the line's total.
    "woocommerce": Columns(
        customer="billing_email",
        item="item_sku",
        order="order_id",
        quantity="item_quantity",
        timestamp="order_date",
        total="item_total",
        description="item_name",
        status="status",
        item_fallback="item_name",
    ),
    # Magento 2's order items (sales_order joined with sales_order_item, the field names
    # of both tables, as its report and export extensions write them).
    "magento": Columns(
        customer="customer_email",
        item="sku",
        order="increment_id",
        quantity="qty_ordered",
        timestamp="created_at",
        price="price",
        description="name",
        status="status",
        item_fallback="name",
    ),
}


PRESET_NON_PRODUCT_PATTERNS: dict[str, str] = {"online-retail": ONLINE_RETAIL_NON_PRODUCT_PATTERN}

PRESET_CANCELLED_PREFIXES: dict[str, str] = {"online-retail": "C"}
"""Order-id prefixes that mark cancellations: Online Retail's ``C536379``. No other
platform marks them so (a Shopify store may well number its orders ``CA-1001``)."""

REFUNDED_STATUSES = frozenset({"refunded", "voided", "closed", "wc-refunded"})
"""Order statuses (lower case) of refunded orders: Shopify's refunded and voided,
WooCommerce's refunded, Magento's closed (a credit memo refunded it)."""
CANCELLED_STATUSES = frozenset(
    {"cancelled", "canceled", "wc-cancelled", "failed", "wc-failed", "expired"}
)
"""Order statuses (lower case) of orders that never completed."""


@dataclass(frozen=True)
class CleaningRules:
    cancelled_order_prefix: str | None = None
    """Order ids starting with this are cancellations: only where a preset or the user
    sets it."""
    non_product_pattern: str | None = DEFAULT_NON_PRODUCT_PATTERN
    non_product_items: frozenset[str] = frozenset()
    drop_duplicates: bool = True
    refunded_statuses: frozenset[str] = REFUNDED_STATUSES
    cancelled_statuses: frozenset[str] = CANCELLED_STATUSES
    min_parse_share: float = parsing.MIN_PARSE_SHARE
    """Dates, quantities and prices must parse for this share of the rows (0: no check)."""
    date_format: str | None = None
    """``day-first``, ``month-first`` or a strftime format; None infers it (``parsing``)."""


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


def read_purchases(path: Path, columns: Columns, delimiter: str | None = None) -> pd.DataFrame:
    """Reads the file and renames its columns to the standard names.

    Column names match without regard to case and surrounding spaces; a CSV's delimiter
    is sniffed unless given. Text columns arrive dictionary-encoded (pandas categoricals):
    tens of millions of lines hold integer codes and one string per distinct id, not one
    Python object a row.
    """
    mapping = columns.mapping()
    wanted = list(dict.fromkeys(mapping.values()))
    optional = [columns.item_fallback] if columns.item_fallback else []
    raw = read_table(
        path,
        wanted,
        what="purchases file",
        categorical=True,
        delimiter=delimiter,
        optional=optional,
    )
    frame = pd.DataFrame({std: raw[col] for std, col in mapping.items()})
    if columns.item_fallback and columns.item_fallback in raw:
        frame[ITEM] = _with_fallback(frame[ITEM], raw[columns.item_fallback])
    return frame


def _blank(values: pd.Series) -> np.ndarray:
    """Row mask of missing or blank cells (a categorical's test runs per category)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        blank: np.ndarray = values.isna().to_numpy() | _category_mask(
            values, lambda c: c.astype(str).str.strip() == ""
        )
        return blank
    return np.asarray(values.isna() | (values.astype(str).str.strip() == ""), dtype=bool)


def _with_fallback(items: pd.Series, fallback: pd.Series) -> pd.Series:
    """Item ids, the fallback column's value where the id is blank."""
    blank = _blank(items)
    if not blank.any():
        return items
    filled = items.astype(object).where(~blank, fallback.astype(object))
    return filled.astype("category")


def read_table(
    path: Path,
    wanted: list[str] | None = None,
    what: str = "file",
    categorical: bool = False,
    delimiter: str | None = None,
    optional: list[str] | None = None,
) -> pd.DataFrame:
    """A CSV(.gz), TSV or Parquet file: the ``wanted`` columns (all when None), as read,
    named as ``wanted`` names them (matched without regard to case and spaces); the
    ``optional`` columns too, where the file has them.

    CSV cells stay text: ids such as "00123" must not turn into numbers. With
    ``categorical``, text columns are read dictionary-encoded, through pyarrow. A CSV's
    delimiter is ``delimiter``, else sniffed from its header (``parsing``).
    """
    optional = optional or []
    if not path.exists():
        raise InputError(f"{what} not found: {path}")
    if path.is_dir():
        raise InputError(f"{what} path is a directory, not a file: {path}")
    suffixes = "".join(path.suffixes[-2:]).lower()
    try:
        if suffixes.endswith((".parquet", ".pq")):
            names = None
            if wanted is not None:
                names = _resolve(_parquet_columns(path), wanted, optional, path)
            picked = None if names is None else list(dict.fromkeys(names.values()))
            if categorical:
                frame = _read_parquet_encoded(path, picked)
            else:
                frame = pd.read_parquet(path, columns=picked)
            return _renamed(frame, names)
        if suffixes.endswith((".csv", ".csv.gz", ".tsv", ".txt", ".csv.bz2", ".tsv.gz")):
            sep = delimiter or ("\t" if ".tsv" in suffixes else parsing.sniff_delimiter(path))
            header = [str(c) for c in pd.read_csv(path, sep=sep, nrows=0).columns]
            names = None if wanted is None else _resolve(header, wanted, optional, path)
            usecols = None if names is None else list(dict.fromkeys(names.values()))
            if categorical:
                frame = _read_csv_encoded(path, sep, usecols)
            else:
                frame = pd.read_csv(
                    path, sep=sep, usecols=usecols, dtype=str, keep_default_na=False
                )
            if names is None:
                frame.columns = [str(c).lstrip("\ufeff").strip() for c in frame.columns]
            return _renamed(frame, names)
    except InputError:
        raise
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"could not read {path}: {exc}") from exc
    except Exception as exc:  # pyarrow raises its own ArrowInvalid for malformed files
        if type(exc).__module__.startswith("pyarrow"):
            raise InputError(f"could not read {path}: {exc}") from exc
        raise
    raise InputError(f"unknown file type {path.name!r}: expected .csv(.gz) or .parquet")


def _resolve(
    available: list[str], wanted: list[str], optional: list[str], path: Path
) -> dict[str, str]:
    """The file's name of each wanted (and present optional) column."""
    by_key: dict[str, str] = {}
    for name in available:
        by_key.setdefault(parsing.header_key(name), name)
    found = {w: by_key[parsing.header_key(w)] for w in wanted if parsing.header_key(w) in by_key}
    _require(available, [w for w in wanted if w not in found], path)
    found.update(
        {o: by_key[parsing.header_key(o)] for o in optional if parsing.header_key(o) in by_key}
    )
    return found


def _renamed(frame: pd.DataFrame, names: dict[str, str] | None) -> pd.DataFrame:
    """The columns under the names the caller asked for (each file column once)."""
    if names is None:
        return frame
    return pd.DataFrame({want: frame[have] for want, have in names.items()})


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


def _parsed(
    values: pd.Series, convert: Any, column: str, what: str, rules: CleaningRules
) -> pd.Series:
    """``convert`` over the distinct values of a column (text), checked against the
    parse-rate rule (``parsing.require_parsed``) with each value's row count."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(str).where(values.notna(), "").astype("category")
    cats = pd.Series(values.cat.categories.astype(str))
    parsed = pd.Series(convert(cats))
    codes = values.cat.codes.to_numpy()
    if rules.min_parse_share > 0:
        counts = np.bincount(codes[codes >= 0], minlength=len(cats))
        missing = int((codes < 0).sum())
        raw = pd.concat([cats, pd.Series([""])], ignore_index=True)
        got = pd.concat([parsed.astype(object), pd.Series([None], dtype=object)], ignore_index=True)
        rows = np.append(counts, missing)
        parsing.require_parsed(column, raw, got, what, rows, rules.min_parse_share)
    out = parsed.iloc[np.maximum(codes, 0)].reset_index(drop=True)
    out = out.where(pd.Series(codes >= 0))
    out.index = values.index
    return pd.Series(out)


def _numbers(values: pd.Series, column: str, rules: CleaningRules) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return pd.Series(pd.to_numeric(values, errors="coerce"), index=values.index)

    def convert(cats: pd.Series) -> pd.Series:
        return parsing.to_numbers(cats, parsing.number_style(cats, column))

    return _parsed(values, convert, column, "numbers", rules)


def _timestamps(values: pd.Series, column: str, rules: CleaningRules) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values.dtype) or pd.api.types.is_numeric_dtype(
        values.dtype
    ):  # typed already (Parquet): as pandas reads it
        stamps = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
        return pd.Series(stamps, index=values.index)

    def convert(cats: pd.Series) -> pd.Series:
        return parsing.to_timestamps(cats, column, rules.date_format)

    return _parsed(values, convert, column, "dates", rules)


def _fill_down(df: pd.DataFrame) -> None:
    """Order-level fields left blank on an order's later lines (as Shopify writes them)
    take the value of the order's first line that has one."""
    if ORDER not in df:
        return
    order = pd.Series(pd.Categorical(df[ORDER]).codes, index=df.index)
    for col in (CUSTOMER, TIMESTAMP, STATUS, CANCELLED_AT):
        if col not in df:
            continue
        blank = _blank(df[col])
        if not blank.any() or blank.all():
            continue
        known = df[col].astype(object).where(~blank)
        filled = known.groupby(order.to_numpy(), sort=False).transform("first")
        df[col] = filled.where(filled.notna(), "").astype("category")


def _valid_ids(ids: pd.Series, max_length: int) -> pd.Series:
    return ids.str.fullmatch(lay.ID_PATTERN[1:-1]).fillna(False) & (ids.str.len() <= max_length)


def _category_mask(values: pd.Series, test: Any) -> np.ndarray:
    """Row mask of a categorical from a boolean test over its categories (NaN: False)."""
    cats = np.asarray(test(pd.Series(values.cat.categories)), dtype=bool)
    codes = values.cat.codes.to_numpy()
    return np.where(codes >= 0, cats[np.maximum(codes, 0)], False)


def clean(
    frame: pd.DataFrame, rules: CleaningRules, names: Mapping[str, str] | None = None
) -> tuple[pd.DataFrame, CleanReport]:
    """Drops unusable rows, counting each reason once, in a fixed order. ``names`` gives
    the export's name of each standard column, for messages (``Columns.mapping``)."""
    named = dict(names or {})
    report = CleanReport(rows_read=len(frame))
    df = frame.copy()
    _fill_down(df)
    df[CUSTOMER] = id_codes(df[CUSTOMER])
    df[ITEM] = id_codes(df[ITEM])
    if ORDER in df:
        df[ORDER] = id_codes(df[ORDER])
    if QUANTITY in df:
        df[QUANTITY] = _numbers(df[QUANTITY], named.get(QUANTITY, QUANTITY), rules)
    if PRICE in df:
        df[PRICE] = _numbers(df[PRICE], named.get(PRICE, PRICE), rules)
    elif TOTAL in df:
        total = _numbers(df.pop(TOTAL), named.get(TOTAL, TOTAL), rules)
        df[PRICE] = total / df[QUANTITY] if QUANTITY in df else total
    if TIMESTAMP in df:
        df[TIMESTAMP] = _timestamps(df[TIMESTAMP], named.get(TIMESTAMP, TIMESTAMP), rules)
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
    for col in (STATUS, CANCELLED_AT):
        if col in df and not isinstance(df[col].dtype, pd.CategoricalDtype):
            df[col] = df[col].astype(str).where(df[col].notna(), "").astype("category")

    def status_in(words: frozenset[str]) -> np.ndarray:
        return _category_mask(df[STATUS], lambda c: c.str.strip().str.lower().isin(words))

    # By the platform's status, never by an id prefix (unless one was asked for above).
    if STATUS in df:
        drop("refunded", status_in(rules.refunded_statuses))
    if STATUS in df or CANCELLED_AT in df:
        cancelled = np.zeros(len(df), dtype=bool)
        if STATUS in df:
            cancelled |= status_in(rules.cancelled_statuses)
        if CANCELLED_AT in df:
            cancelled |= ~_blank(df[CANCELLED_AT])
        drop("cancelled", cancelled)
    df = df.drop(columns=[c for c in (STATUS, CANCELLED_AT) if c in df])
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
