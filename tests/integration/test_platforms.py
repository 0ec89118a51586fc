"""A store's own export, start to finish: each platform's orders and products exports as
they are written, trained with ``--preset`` and no other flag, then asked for carts.

The shop (``tests.shops``) plants six "bought together" pairs and four upgrades, and
writes refunds, cancellations, blank continuation fields, day-first dates, decimal
commas, ``;`` delimiters and ``CA-`` order numbers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from recsvc.api.app import create_app
from recsvc.config import Settings
from tests.conftest import in_process
from training.cli.main import main as train_main
from training.errors import EXIT_BAD_INPUT
from training.samples.shops import Shop, Style, write_orders, write_products

SHOP = Shop()
EUROPEAN = Style(delimiter=";", day_first=True, decimal_comma=True, order_prefix="CA-")
PLATFORMS = ("shopify", "woocommerce", "magento")


def train(settings: Settings, *args: str) -> int:
    """``train`` as a store runs it: no ``--force``, so the quality gate decides."""
    return train_main(["train", *args], settings)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process(create_app(settings)) as client:
        yield client


async def cart(api: httpx.AsyncClient, sku: str) -> dict[str, Any]:
    r = await api.post("/v1/recommendations/cart", json={"items": [sku], "k": 5, "upsell_k": 3})
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.mark.slow
@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("style", [Style(), EUROPEAN], ids=["plain", "european"])
async def test_a_platform_export_trains_with_its_preset_alone(
    platform: str,
    style: Style,
    settings: Settings,
    api: httpx.AsyncClient,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    orders = write_orders(SHOP, platform, tmp_path / "orders_export.csv", style)
    products = write_products(SHOP, platform, tmp_path / "products_export.csv", style)
    code = train(settings, "--purchases", str(orders), "--catalog", str(products),
                 "--preset", platform)  # fmt: skip
    log = capsys.readouterr().err
    assert code == 0, log
    # Every refund and cancellation counted under its own reason and dropped; the CA-
    # order numbers kept (no prefix rule outside Online Retail's preset).
    assert f"dropped {SHOP.refunded_lines():>9,}  refunded" in log
    assert f"dropped {SHOP.cancelled_lines():>9,}  cancelled" in log
    kept = len(SHOP.lines) - SHOP.refunded_lines() - SHOP.cancelled_lines()
    assert f"rows kept: {kept:,}" in log
    first = 0
    for seed, partner in SHOP.pairs:
        answer = await cart(api, seed)
        first += answer["cross_sell"][0]["item_id"] == partner
        # Decimal commas read as decimals: the catalog's price, to the cent.
        assert (
            answer["cross_sell"][0]["price"]
            == SHOP.by_sku[answer["cross_sell"][0]["item_id"]].price
        )
    assert first >= 5, f"{first} of 6 planted pairs first"
    offered = 0
    for cheap, premium in SHOP.upgrades:
        upsell = (await cart(api, cheap))["upsell"]
        offered += premium in [u["item_id"] for u in upsell]
        assert all(u["category"] == SHOP.by_sku[cheap].category for u in upsell), upsell
    assert offered >= 3, f"{offered} of 4 planted upgrades offered"


@pytest.mark.slow
async def test_day_first_dates_are_read_day_first(
    settings: Settings, publisher: Any, tmp_path: Path
) -> None:
    orders = write_orders(SHOP, "shopify", tmp_path / "orders_export.csv", EUROPEAN)
    assert train(settings, "--purchases", str(orders), "--preset", "shopify") == 0
    meta = publisher.meta(publisher.live_version())
    # The shop's year runs from 2 January 2025, written 02/01/2025 10:00 (no zone: taken
    # as UTC); month-first would read 02/01 as 1 February and lose every day above 12.
    assert meta["source"]["dropped"]["bad_timestamp"] == 0
    assert meta["data_period"]["first"] == "2025-01-02T10:00:00+00:00"
    assert meta["data_period"]["last"].startswith("2025-12-")


def _ambiguous(path: Path) -> Path:
    """The shop's Shopify export with every day of the month at 12 or below."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, sep=";")
    for column in ("Created at", "Paid at", "Cancelled at"):
        frame[column] = frame[column].str.replace(
            r"^(\d\d)/", lambda m: f"{int(m.group(1)) % 12 + 1:02d}/", regex=True
        )
    frame.to_csv(path, index=False, sep=";")
    return path


def test_ambiguous_dates_exit_2_showing_both_readings(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orders = _ambiguous(write_orders(SHOP, "shopify", tmp_path / "o.csv", EUROPEAN))
    assert train(settings, "--purchases", str(orders), "--preset", "shopify") == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "column 'Created at': every date reads both ways" in err
    assert "day-first or" in err and "month-first" in err and "--date-format" in err


@pytest.mark.slow
def test_date_format_settles_ambiguous_dates(settings: Settings, tmp_path: Path) -> None:
    orders = _ambiguous(write_orders(SHOP, "shopify", tmp_path / "o.csv", EUROPEAN))
    args = ["--purchases", str(orders), "--preset", "shopify", "--date-format", "day-first"]
    assert train(settings, *args) == 0


def test_a_tiny_file_exits_2_even_with_force(
    settings: Settings, publisher: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = Shop(customers=3, orders=3)
    orders = write_orders(small, "shopify", tmp_path / "orders_export.csv")
    assert train(settings, "--purchases", str(orders), "--preset", "shopify") == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "too little data to train a model on" in err
    assert "at least 50 are needed" in err and "at least 20 are needed" in err
    assert "--force skips the quality gate, never this floor" in err
    assert publisher.live_version() is None


def test_a_column_that_mostly_fails_to_parse_exits_2_naming_it(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orders = write_orders(SHOP, "woocommerce", tmp_path / "orders_export.csv")
    frame = pd.read_csv(orders, dtype=str, keep_default_na=False)
    frame.loc[frame.index % 10 == 0, "item_quantity"] = "n/a"
    frame.to_csv(orders, index=False)
    assert train(settings, "--purchases", str(orders), "--preset", "woocommerce") == 2
    err = capsys.readouterr().err
    bad = len(frame[frame.index % 10 == 0])
    assert f"column 'item_quantity': {bad:,} of {len(frame):,} rows are not numbers" in err
    assert "'n/a'" in err


def test_headers_match_without_case_or_spaces(settings: Settings, tmp_path: Path) -> None:
    orders = write_orders(SHOP, "magento", tmp_path / "orders_export.csv")
    text = orders.read_text().splitlines()
    header = ",".join(f" {name.upper()} " for name in text[0].split(","))
    orders.write_text("\ufeff" + "\n".join([header, *text[1:]]) + "\n")
    assert train(settings, "--purchases", str(orders), "--preset", "magento") == 0


@pytest.mark.slow
async def test_a_store_whose_customers_task_loses_to_best_sellers_serves_them_there(
    settings: Settings,
    publisher: Any,
    api: httpx.AsyncClient,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """This shop's customers come back too rarely for their histories to beat what sells
    best: the trainer serves best-sellers for stored customers, says why, and publishes
    (no --force); the cart is still the model's."""
    orders = write_orders(SHOP, "shopify", tmp_path / "orders_export.csv")
    assert train(settings, "--purchases", str(orders), "--preset", "shopify") == 0
    log = capsys.readouterr()
    assert "next purchases: best-sellers, because the model scored" in log.err
    assert "gate=passed" in log.out
    meta = publisher.meta(publisher.live_version())
    assert meta["serving"]["history_recipe"] == "popular"
    assert meta["params"]["history_recipe"] == "popular"
    chosen = meta["evaluation"]["recipes"]["next"]
    assert chosen["served"] == "popular"
    assert chosen["scores"]["best-sellers"] > chosen["scores"]["the model"]
    # A stored customer gets best-sellers they have not bought, and is told so.
    customer = SHOP.lines[-1].customer
    r = await api.get(f"/v1/customers/{customer}/recommendations", params={"k": 5})
    assert r.status_code == 200, r.text
    suggested = r.json()["recommendations"]
    assert suggested and all(s["reason"].startswith("popular") for s in suggested)
    bought = {line.sku for line in SHOP.lines if line.customer == customer}
    assert not bought & {s["item_id"] for s in suggested}
    # The cart still comes from the lists.
    seed, partner = SHOP.pairs[0]
    assert (await cart(api, seed))["cross_sell"][0]["item_id"] == partner
    report = await api.get("/v1/model/report", params={"format": "html"})
    assert "next purchases: best-sellers, because the model scored" in report.text


@pytest.mark.slow
async def test_without_a_catalog_upsell_stays_within_the_items_kind(
    settings: Settings, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """No categories: an alternative needs a distinctive title word in common with the
    cart item (``training.stages.kinds``), and no popular filler stands in. Offers outside the
    item's category (which the test knows, the model does not) stay under 20%."""
    orders = write_orders(SHOP, "shopify", tmp_path / "orders_export.csv")
    assert train(settings, "--purchases", str(orders), "--preset", "shopify") == 0
    offers = outside = 0
    upgrades = 0
    for product in SHOP.products:
        upsell = (await cart(api, product.sku))["upsell"]
        offers += len(upsell)
        outside += sum(SHOP.by_sku[u["item_id"]].category != product.category for u in upsell)
        upgrades += any((product.sku, u["item_id"]) in SHOP.upgrades for u in upsell)
    assert offers > 0
    assert outside <= 0.2 * offers, f"{outside} of {offers} upsells outside the category"
    print(f"without a catalog: {offers} upsells, {outside} outside the item's category, "
          f"{upgrades} of 4 planted upgrades")  # fmt: skip


def test_sample_platform_writes_both_exports_and_never_overwrites(tmp_path: Path) -> None:
    from recsvc.cli.main import main as recsvc_main

    out = tmp_path / "shop"
    assert recsvc_main(["sample", "--platform", "woocommerce", "--out", str(out)]) == 0
    orders = pd.read_csv(out / "orders_export.csv", dtype=str)
    products = pd.read_csv(out / "products_export.csv", dtype=str)
    assert {"order_id", "status", "billing_email", "item_sku", "item_total"} <= set(orders)
    assert {"SKU", "Name", "Regular price", "In stock?"} <= set(products)
    assert recsvc_main(["sample", "--platform", "woocommerce", "--out", str(out)]) == 2


def test_catalog_columns_of_any_other_file_are_named_with_flags(
    settings: Settings, publisher: Any, tmp_path: Path
) -> None:
    orders = write_orders(SHOP, "magento", tmp_path / "orders_export.csv")
    catalog = tmp_path / "pim.csv"
    pd.DataFrame(
        {
            "Artikelnummer": [p.sku for p in SHOP.products],
            "Bezeichnung": [p.title for p in SHOP.products],
            "Warengruppe": [p.category for p in SHOP.products],
            "Preis": [f"{p.price:.2f}".replace(".", ",") for p in SHOP.products],
        }
    ).to_csv(catalog, index=False, sep=";")
    flags = ["--catalog-item-id-col", "Artikelnummer", "--catalog-title-col", "Bezeichnung",
             "--catalog-category-col", "Warengruppe", "--catalog-price-col", "Preis"]  # fmt: skip
    args = ["--purchases", str(orders), "--preset", "magento", "--catalog", str(catalog)]
    assert train(settings, *args, *flags) == 0
    meta = publisher.meta(publisher.live_version())
    assert meta["catalog"]["source"] == "file"
    assert meta["catalog"]["with_category"] == meta["counts"]["items"]


def test_the_spark_engine_refuses_what_its_reader_cannot_read(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orders = write_orders(SHOP, "shopify", tmp_path / "orders_export.csv")
    args = ["--purchases", str(orders), "--preset", "shopify", "--engine", "spark"]
    assert train(settings, *args) == EXIT_BAD_INPUT
    assert "--engine spark does not read --preset shopify" in capsys.readouterr().err
