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
from training.stages import parsing
from training.stages.ingest import DESCRIPTION, ITEM, PRICE, TIMESTAMP, _ids, read_table
from training.stages.matrices import codes_of

CURRENCY_PATTERN = r"[A-Z]{3}"
"""An ISO 4217 currency code, as the catalog's ``currency`` column gives it."""
REQUIRED = ("item_id", "title", "category", "price", "available")
OPTIONAL = ("brand", "margin", "cost", "image_url", "url", "currency")
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


@dataclass(frozen=True)
class CatalogColumns:
    """Which column of a catalog file holds what. The plain format's names are the
    defaults; a platform's product export maps its own (``CATALOG_PRESETS``)."""

    item_id: str = "item_id"
    title: str = "title"
    category: str | None = "category"
    price: str = "price"
    available: str | None = "available"
    brand: str | None = "brand"
    margin: str | None = "margin"
    cost: str | None = "cost"
    image_url: str | None = "image_url"
    url: str | None = "url"
    currency: str | None = "currency"
    """The price's ISO 4217 code (``EUR``): the widget formats prices in it."""
    inventory: str | None = None
    """Stock on hand: an item is available only when it is above 0."""
    status: str | None = None
    """A product status: available only when it is one of ``LIVE_STATUSES``."""
    sale_price: str | None = None
    """A sale price that, where set, is the price."""
    group: str | None = None
    """Rows of one product (Shopify's ``Handle``): the first row's title, category, brand
    and image stand for the product's later (variant) rows, where they are blank."""
    url_prefix: str | None = None
    """Links from ``group``: ``url_prefix + handle`` (a storefront-relative URL)."""
    variant: str | None = None
    """A variant's option (size, colour), added to the product's title."""
    list_separator: str | None = None
    """Categories and images listed in one cell: the first one is taken."""
    category_path_separator: str | None = None
    """Categories written as paths (Magento's ``Default Category/Gear/Bags``): the last
    part is the category."""
    required: tuple[str, ...] = ("item_id", "title", "category", "price", "available")


CATALOG_PRESETS: dict[str, CatalogColumns] = {
    # Shopify's products export (Products > Export): one row per variant, the product's
    # fields on its first row only.
    "shopify": CatalogColumns(
        item_id="Variant SKU",
        title="Title",
        category="Type",
        price="Variant Price",
        available=None,
        brand="Vendor",
        image_url="Image Src",
        url=None,
        inventory="Variant Inventory Qty",
        status="Status",
        group="Handle",
        url_prefix="/products/",
        variant="Option1 Value",
        margin=None,
        cost="Cost per item",
        required=("item_id", "title", "price"),
    ),
    # WooCommerce's product CSV exporter (Products > Export).
    "woocommerce": CatalogColumns(
        item_id="SKU",
        title="Name",
        category="Categories",
        price="Regular price",
        sale_price="Sale price",
        available="In stock?",
        brand=None,
        image_url="Images",
        url=None,
        inventory=None,
        status="Published",
        margin=None,
        cost=None,
        list_separator=",",
        required=("item_id", "title", "price"),
    ),
    # Magento 2's catalog_product export (System > Data Transfer > Export).
    "magento": CatalogColumns(
        item_id="sku",
        title="name",
        category="categories",
        price="price",
        available="is_in_stock",
        brand=None,
        image_url="base_image",
        url=None,
        inventory="qty",
        margin=None,
        cost=None,
        list_separator=",",
        category_path_separator="/",
        required=("item_id", "title", "price"),
    ),
}
_RECOGNISED = {
    "shopify": ("handle", "variant sku", "variant price"),
    "woocommerce": ("sku", "name", "regular price"),
    "magento": ("sku", "name", "price", "attribute_set_code"),
}
LIVE_STATUSES = frozenset({"active", "1", "publish", "published", "enabled"})


def recognise(header: Sequence[str]) -> str | None:
    """The platform whose product export has this header, if any."""
    keys = {parsing.header_key(h) for h in header}
    for name, needed in _RECOGNISED.items():
        if all(k in keys for k in needed):
            return name
    return None


def read_catalog(
    path: Path,
    preset: str | None = None,
    columns: CatalogColumns | None = None,
    delimiter: str | None = None,
) -> tuple[pd.DataFrame, CatalogReport]:
    """Reads and validates a catalog file; malformed rows are counted and skipped.

    The mapping is ``columns`` when given, else the platform product export the header
    shows (or ``preset`` names), else the plain format. A file without the required
    columns is refused as a whole, before anything is trained or published.
    """
    raw = read_table(path, what="catalog file", delimiter=delimiter)
    by_key: dict[str, str] = {}
    for name in raw.columns:
        by_key.setdefault(parsing.header_key(name), str(name))
    recognised = recognise(list(raw.columns))
    if columns is None:
        platform = recognised or (preset if preset in CATALOG_PRESETS else None)
        columns = CATALOG_PRESETS[platform] if platform else CatalogColumns()

    def col(name: str | None) -> pd.Series | None:
        if name is None or parsing.header_key(name) not in by_key:
            return None
        values = raw[by_key[parsing.header_key(name)]]
        return values.astype(str).where(values.notna(), "").str.strip()

    missing = [f for f in columns.required if col(getattr(columns, f)) is None]
    if missing:
        wanted = ", ".join(
            str(getattr(columns, f)) + ("" if getattr(columns, f) == f else f" ({f})")
            for f in missing
        )
        raise InputError(
            f"catalog {path.name} lacks the column(s) {wanted}; the file has "
            f"{', '.join(map(str, raw.columns))}. The plain format needs "
            f"{', '.join(REQUIRED)} (optional: {', '.join(OPTIONAL)}); Shopify, WooCommerce "
            "and Magento product exports are recognised from their header, and "
            "--catalog-*-col names any other file's columns"
        )
    report = CatalogReport(rows_read=len(raw), source=path.name)
    group = col(columns.group)
    if group is not None:
        group = group.replace("", None).ffill().fillna("")

    def carried(values: pd.Series | None) -> pd.Series:
        if values is None:
            return pd.Series("", index=raw.index)
        if group is None:
            return values
        return values.replace("", None).groupby(group).ffill().fillna("")

    def first(values: pd.Series) -> pd.Series:
        if columns.list_separator is None:
            return values
        return values.str.split(columns.list_separator, n=1).str[0].str.strip()

    item = col(columns.item_id)
    assert item is not None
    df = pd.DataFrame({"item_id": _ids(item)})
    title = carried(col(columns.title))
    variant = col(columns.variant)
    if variant is not None:
        named = (variant != "") & (variant.str.lower() != "default title")
        title = title.where(~named, title + " (" + variant + ")")
    df["title"] = title
    df["category"] = first(carried(col(columns.category)))
    if columns.category_path_separator:
        sep = columns.category_path_separator
        df["category"] = df["category"].str.rsplit(sep, n=1).str[-1].str.strip()
    price_text = col(columns.price)
    assert price_text is not None
    style = parsing.number_style(price_text.unique(), columns.price)
    df["price"] = parsing.to_numbers(price_text, style)
    sale = col(columns.sale_price)
    if sale is not None:
        on_sale = parsing.to_numbers(
            sale, parsing.number_style(sale.unique(), str(columns.sale_price))
        )
        df["price"] = on_sale.where(on_sale > 0, df["price"])
    available = col(columns.available)
    df["available"] = available.map(_flag) if available is not None else True
    stock = col(columns.inventory)
    if stock is not None:
        quantity = pd.to_numeric(stock, errors="coerce")
        df["available"] = df["available"].where(~(quantity <= 0), False)
    status = carried(col(columns.status)) if columns.status else None
    if status is not None and (status != "").any():
        live = status.str.lower().isin(LIVE_STATUSES) | (status == "")
        df["available"] = df["available"].where(live, False)
    for name in OPTIONAL:
        values = col(getattr(columns, name))
        if name in ("brand", "image_url"):
            values = carried(values) if values is not None else None
            if values is not None and name == "image_url":
                values = first(values)
        if values is None:
            continue
        df[name] = pd.to_numeric(values, errors="coerce") if name in ("margin", "cost") else values
    if columns.url_prefix and group is not None and "url" not in df:
        df["url"] = columns.url_prefix + group

    def skip(reason: str, mask: pd.Series) -> None:
        nonlocal df
        bad = mask.to_numpy(dtype=bool)
        if bad.any():
            report.skipped[reason] = int(bad.sum())
        df = df.loc[~bad]

    skip("missing_item_id", df["item_id"] == "")
    skip("bad_price", ~(df["price"] >= 0))
    skip("bad_available", df["available"].isna())
    if "currency" in df:
        df["currency"] = df["currency"].str.upper()
        skip(
            "bad_currency", ~df["currency"].str.fullmatch(CURRENCY_PATTERN) & (df["currency"] != "")
        )
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
