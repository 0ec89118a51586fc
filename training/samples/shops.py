"""A small shop's exports as the platforms write them, with answers known in advance:
what ``recsvc sample --platform`` writes, and what the tests train on.

``Shop`` draws a coffee shop (80 SKUs in 9 categories, 300 customers, about 900 orders)
with planted "bought together" pairs (the second item joins most orders of the first) and
planted upgrades (customers of the cheaper item come back for the pricier one of the same
category). ``write_orders`` and ``write_products`` write its Shopify, WooCommerce or
Magento exports, with what real files carry: refunded and cancelled orders, order-level
fields blank on an order's later lines (Shopify), day-first dates, decimal commas, ``;``
delimiters and ``CA-`` order numbers, as asked.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

CATEGORIES = {
    "Coffee beans": 14,
    "Tea": 10,
    "Brewers": 10,
    "Grinders": 6,
    "Filters": 8,
    "Mugs": 10,
    "Syrups": 8,
    "Snacks": 8,
    "Cleaning": 6,
}


@dataclass(frozen=True)
class Product:
    sku: str
    title: str
    category: str
    price: float
    handle: str


@dataclass(frozen=True)
class Line:
    order: str
    customer: str
    sku: str
    quantity: int
    when: pd.Timestamp
    status: str  # paid, refunded, voided, cancelled


@dataclass
class Shop:
    seed: int = 0
    customers: int = 300
    orders: int = 900
    refund_share: float = 0.05
    cancel_share: float = 0.02
    products: list[Product] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    upgrades: list[tuple[str, str]] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        by_category: dict[str, list[Product]] = {}
        for c, (category, count) in enumerate(CATEGORIES.items()):
            for n in range(count):
                base = 4.0 + 3.0 * c + 2.5 * n
                handle = f"{category.lower().replace(' ', '-')}-{n + 1}"
                product = Product(
                    f"SKU-{c}{n:02d}", f"{category} no. {n + 1}", category, round(base, 2), handle
                )
                by_category.setdefault(category, []).append(product)
                self.products.append(product)
        pick = {p.category: p for p in self.products}
        cats = list(by_category)
        # Six pairs across categories (bought together), four upgrades within one.
        self.pairs = [
            (by_category["Brewers"][0].sku, by_category["Filters"][0].sku),
            (by_category["Grinders"][1].sku, by_category["Coffee beans"][2].sku),
            (by_category["Tea"][3].sku, by_category["Mugs"][4].sku),
            (by_category["Coffee beans"][5].sku, by_category["Syrups"][1].sku),
            (by_category["Snacks"][2].sku, by_category["Tea"][6].sku),
            (by_category["Cleaning"][0].sku, by_category["Brewers"][3].sku),
        ]
        self.upgrades = [
            (by_category["Brewers"][5].sku, by_category["Brewers"][8].sku),
            (by_category["Grinders"][0].sku, by_category["Grinders"][3].sku),
            (by_category["Mugs"][1].sku, by_category["Mugs"][6].sku),
            (by_category["Tea"][0].sku, by_category["Tea"][4].sku),
        ]
        del pick
        partner = dict(self.pairs)
        upgrade = dict(self.upgrades)
        skus = [p.sku for p in self.products]
        popularity = rng.dirichlet(np.full(len(skus), 0.6))
        seeds = [a for a, _ in self.pairs] + [a for a, _ in self.upgrades]
        start = pd.Timestamp("2025-01-02 09:00", tz="UTC")
        pending: dict[str, str] = {}  # customer -> an upgrade to come back for
        for o in range(self.orders):
            customer = f"customer{int(rng.integers(self.customers)):03d}@example.com"
            when = start + pd.Timedelta(minutes=int(o * 350 * 24 * 60 / self.orders))
            items: list[str] = []
            if customer in pending and rng.random() < 0.7:
                items.append(pending.pop(customer))
            if rng.random() < 0.55:
                items.append(str(rng.choice(seeds)))
            while len(items) < int(rng.integers(1, 4)):
                items.append(str(rng.choice(skus, p=popularity)))
            for sku in list(items):
                if sku in partner and rng.random() < 0.85:
                    items.append(partner[sku])
                if sku in upgrade and rng.random() < 0.8:
                    pending[customer] = upgrade[sku]
            items = list(dict.fromkeys(items))
            roll = rng.random()
            status = (
                "refunded"
                if roll < self.refund_share
                else "voided"
                if roll < self.refund_share + 0.01
                else "cancelled"
                if roll < self.refund_share + 0.01 + self.cancel_share
                else "paid"
            )
            number = f"{1001 + o}"
            for sku in items:
                self.lines.append(
                    Line(number, customer, sku, int(rng.integers(1, 3)), when, status)
                )
        self.by_sku = {p.sku: p for p in self.products}
        self._categories = cats

    def refunded_lines(self) -> int:
        return sum(line.status in ("refunded", "voided") for line in self.lines)

    def cancelled_lines(self) -> int:
        return sum(line.status == "cancelled" for line in self.lines)


@dataclass(frozen=True)
class Style:
    """How a file is written: the delimiter, day-first dates, decimal commas, and a
    prefix of order numbers."""

    delimiter: str = ","
    day_first: bool = False
    decimal_comma: bool = False
    order_prefix: str = "#"


def _money(value: float, style: Style) -> str:
    text = f"{value:.2f}"
    return text.replace(".", ",") if style.decimal_comma else text


def _date(when: pd.Timestamp, style: Style, iso_offset: bool) -> str:
    local = when.tz_convert("Europe/Berlin")
    if style.day_first:
        return local.strftime("%d/%m/%Y %H:%M")
    if iso_offset:
        return local.strftime("%Y-%m-%d %H:%M:%S %z")
    return local.strftime("%Y-%m-%d %H:%M:%S")


def _write(path: Path, header: list[str], rows: list[dict[str, str]], style: Style) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, header, delimiter=style.delimiter, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


SHOPIFY_ORDER_HEADER = [
    "Name", "Email", "Financial Status", "Paid at", "Fulfillment Status", "Fulfilled at",
    "Accepts Marketing", "Currency", "Subtotal", "Shipping", "Taxes", "Total",
    "Discount Code", "Discount Amount", "Shipping Method", "Created at",
    "Lineitem quantity", "Lineitem name", "Lineitem price", "Lineitem compare at price",
    "Lineitem sku", "Lineitem requires shipping", "Lineitem taxable",
    "Lineitem fulfillment status", "Billing Name", "Billing City", "Billing Country",
    "Cancelled at", "Refunded Amount", "Vendor", "Id",
]  # fmt: skip


def write_orders(shop: Shop, platform: str, path: Path, style: Style = Style()) -> Path:
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    for line in shop.lines:
        product = shop.by_sku[line.sku]
        number = style.order_prefix + line.order
        first = number not in seen
        seen.add(number)
        price = _money(product.price, style)
        if platform == "shopify":
            financial = "pending" if line.status == "cancelled" else line.status
            row = {
                "Name": number,
                "Email": line.customer,
                "Created at": _date(line.when, style, iso_offset=True),
                "Lineitem quantity": str(line.quantity),
                "Lineitem name": product.title,
                "Lineitem price": price,
                "Lineitem sku": line.sku,
                "Lineitem requires shipping": "true",
                "Lineitem taxable": "true",
                "Lineitem fulfillment status": "fulfilled",
                "Vendor": "Roastery",
            }
            if first:  # the order's fields, on its first line only
                row |= {
                    "Financial Status": financial,
                    "Paid at": _date(line.when, style, iso_offset=True),
                    "Fulfillment Status": "fulfilled",
                    "Accepts Marketing": "no",
                    "Currency": "EUR",
                    "Shipping Method": "Standard",
                    "Billing Name": line.customer.split("@")[0],
                    "Billing Country": "DE",
                    "Cancelled at": (
                        _date(line.when, style, iso_offset=True)
                        if line.status == "cancelled"
                        else ""
                    ),
                    "Id": str(5_000_000 + int(line.order)),
                }
            rows.append(row)
        elif platform == "woocommerce":
            status = {"paid": "completed", "voided": "refunded"}.get(line.status, line.status)
            rows.append(
                {
                    "order_id": str(20_000 + int(line.order)),
                    "order_number": number,
                    "order_date": _date(line.when, style, iso_offset=False),
                    "status": status,
                    "billing_email": line.customer,
                    "customer_id": str(abs(hash(line.customer)) % 10_000),
                    "item_name": product.title,
                    "item_sku": line.sku,
                    "item_quantity": str(line.quantity),
                    "item_total": _money(product.price * line.quantity, style),
                }
            )
        elif platform == "magento":
            status = {"paid": "complete", "refunded": "closed", "voided": "closed"}.get(
                line.status, "canceled"
            )
            rows.append(
                {
                    "increment_id": number,
                    "created_at": _date(line.when, style, iso_offset=False),
                    "status": status,
                    "customer_email": line.customer,
                    "sku": line.sku,
                    "name": product.title,
                    "qty_ordered": f"{line.quantity}.0000",
                    "price": price,
                    "row_total": _money(product.price * line.quantity, style),
                }
            )
        else:
            raise ValueError(platform)
    header = {
        "shopify": SHOPIFY_ORDER_HEADER,
        "woocommerce": ["order_id", "order_number", "order_date", "status", "billing_email",
                        "customer_id", "item_name", "item_sku", "item_quantity", "item_total"],
        "magento": ["increment_id", "created_at", "status", "customer_email", "sku", "name",
                    "qty_ordered", "price", "row_total"],
    }[platform]  # fmt: skip
    return _write(path, header, rows, style)


def write_products(shop: Shop, platform: str, path: Path, style: Style = Style()) -> Path:
    rows: list[dict[str, str]] = []
    for n, product in enumerate(shop.products):
        price = _money(product.price, style)
        if platform == "shopify":
            row = {
                "Handle": product.handle,
                "Title": product.title,
                "Vendor": "Roastery",
                "Type": product.category,
                "Published": "true",
                "Option1 Name": "Title",
                "Option1 Value": "Default Title",
                "Variant SKU": product.sku,
                "Variant Inventory Qty": "0" if n % 29 == 28 else "12",
                "Variant Price": price,
                "Image Src": f"https://cdn.example/{product.handle}.jpg",
                "Status": "active",
            }
            rows.append(row)
            # An extra image of the product: a row with the handle and image only.
            rows.append({"Handle": product.handle, "Image Src": f"https://cdn.example/{n}b.jpg"})
        elif platform == "woocommerce":
            rows.append(
                {
                    "ID": str(100 + n),
                    "Type": "simple",
                    "SKU": product.sku,
                    "Name": product.title,
                    "Published": "1",
                    "In stock?": "0" if n % 29 == 28 else "1",
                    "Stock": "",
                    "Regular price": price,
                    "Sale price": "",
                    "Categories": f"{product.category}, Gifts",
                    "Images": f"https://cdn.example/{product.handle}.jpg, https://cdn.example/x.jpg",
                }
            )
        elif platform == "magento":
            rows.append(
                {
                    "sku": product.sku,
                    "attribute_set_code": "Default",
                    "product_type": "simple",
                    "categories": f"Default Category/{product.category}",
                    "name": product.title,
                    "price": price,
                    "qty": "0.0000" if n % 29 == 28 else "12.0000",
                    "is_in_stock": "0" if n % 29 == 28 else "1",
                    "base_image": f"/{product.handle}.jpg",
                    "url_key": product.handle,
                }
            )
        else:
            raise ValueError(platform)
    header = {
        "shopify": ["Handle", "Title", "Body (HTML)", "Vendor", "Type", "Tags", "Published",
                    "Option1 Name", "Option1 Value", "Variant SKU", "Variant Inventory Qty",
                    "Variant Price", "Image Src", "Status"],
        "woocommerce": ["ID", "Type", "SKU", "Name", "Published", "In stock?", "Stock",
                        "Regular price", "Sale price", "Categories", "Images"],
        "magento": ["sku", "attribute_set_code", "product_type", "categories", "name",
                    "price", "qty", "is_in_stock", "base_image", "url_key"],
    }[platform]  # fmt: skip
    return _write(path, header, rows, style)
