from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from training.errors import InputError
from training.stages import ingest

COLUMNS = ingest.PRESETS["online-retail"]
OR_RULES = ingest.CleaningRules(cancelled_order_prefix="C", min_parse_share=0)
"""Online Retail's prefix rule, and no parse-rate check: these files hold one bad value of
each kind among a few rows, to count each reason."""
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def write(tmp_path: Path, body: str, name: str = "p.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body)
    return path


def test_each_kind_of_bad_row_is_dropped_and_counted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "1,A,good,2,2011-01-01 10:00,1.5,17850.0,UK\n"
        "1,A,good,2,2011-01-01 10:00,1.5,17850.0,UK\n"  # exact duplicate
        "2,B,guest,1,2011-01-01 10:00,1.5,,UK\n"  # no customer
        "C3,A,cancel,-1,2011-01-01 10:00,1.5,17850.0,UK\n"  # cancelled order
        "4,A,return,-2,2011-01-01 10:00,1.5,17850.0,UK\n"  # negative quantity
        "5,A,free,1,2011-01-01 10:00,0,17850.0,UK\n"  # zero price
        "6,POST,postage,1,2011-01-01 10:00,18,17850.0,UK\n"  # non-product
        "7,gift_0001_20,voucher,1,2011-01-01 10:00,18,17850.0,UK\n"  # non-product
        "8,B,bad date,1,not a date,1.5,17850.0,UK\n"
        "9,B,fine,1,2011-02-01 10:00,2.0,12346.0,UK\n",
    )
    frame, report = ingest.clean(ingest.read_purchases(path, COLUMNS), OR_RULES)
    assert report.rows_read == 10
    assert report.dropped == {
        "missing_customer": 1,
        "missing_item": 0,
        "invalid_id": 0,
        "cancelled_order": 1,
        "non_positive_or_missing_quantity": 1,
        "non_positive_or_missing_price": 1,
        "bad_timestamp": 1,
        "non_product": 2,
        "exact_duplicate": 1,
    }
    assert report.rows_kept == 2 == len(frame)
    # Float-typed customer ids lose their ".0".
    assert sorted(frame["customer"]) == ["12346", "17850"]


def test_single_letter_codes_are_non_products_only_for_online_retail(tmp_path: Path) -> None:
    path = write(
        tmp_path, "1,M,manual,1,2011-01-01 10:00,1,1,UK\n2,B,item b,1,2011-01-01 10:00,1,1,UK\n"
    )
    generic, _ = ingest.clean(ingest.read_purchases(path, COLUMNS), OR_RULES)
    assert sorted(generic["item"]) == ["B", "M"]
    preset = ingest.CleaningRules(
        non_product_pattern=ingest.PRESET_NON_PRODUCT_PATTERNS["online-retail"]
    )
    with pytest.raises(InputError, match="no rows left"):
        ingest.clean(ingest.read_purchases(path, COLUMNS), preset)


def test_cleaning_rules_are_configurable(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "C1,A,cancel,1,2011-01-01 10:00,1.5,1,UK\n"
        "2,POST,postage,1,2011-01-01 10:00,18,1,UK\n"
        "3,WRAP,wrap,1,2011-01-01 10:00,1,1,UK\n",
    )
    rules = ingest.CleaningRules(
        cancelled_order_prefix=None, non_product_pattern=None, non_product_items=frozenset({"WRAP"})
    )
    frame, report = ingest.clean(ingest.read_purchases(path, COLUMNS), rules)
    assert sorted(frame["item"]) == ["A", "POST"]
    assert report.dropped["non_product"] == 1


def test_parquet_and_csv_read_the_same(tmp_path: Path) -> None:
    csv = write(
        tmp_path, "1,A,x,1,2011-01-01 10:00,1.5,17850.0,UK\n2,B,y,3,2011-01-02 10:00,2,1.0,UK\n"
    )
    raw = pd.read_csv(csv)
    raw["InvoiceDate"] = pd.to_datetime(raw["InvoiceDate"])
    pq = tmp_path / "p.parquet"
    raw.to_parquet(pq)
    a, _ = ingest.clean(ingest.read_purchases(csv, COLUMNS), OR_RULES)
    b, _ = ingest.clean(ingest.read_purchases(pq, COLUMNS), OR_RULES)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_only_customer_and_item_are_required(tmp_path: Path) -> None:
    path = tmp_path / "min.csv"
    path.write_text("who,what\nu1,A\nu1,B\nu2,A\n")
    frame, _ = ingest.clean(
        ingest.read_purchases(path, ingest.Columns(customer="who", item="what")),
        OR_RULES,
    )
    assert len(frame) == 3
    assert (frame["quantity"] == 1).all()
    # Without order ids or times, a customer's whole history is one basket.
    assert frame.groupby("customer")["order"].nunique().tolist() == [1, 1]


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (None, "absent.csv", "not found"),
        ("a,b\n1,2\n", "p.csv", "missing column"),
        ("x", "p.xlsx", "unknown file type"),
        ("not parquet", "p.parquet", "not a readable Parquet"),
    ],
)
def test_unusable_files_are_input_errors(
    tmp_path: Path, content: str | None, name: str, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=message):
        ingest.read_purchases(path, COLUMNS)


def test_no_rows_left_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "1,A,guest,1,2011-01-01 10:00,1.5,,UK\n")
    with pytest.raises(InputError, match="no rows left"):
        ingest.clean(ingest.read_purchases(path, COLUMNS), OR_RULES)


def test_ids_the_api_would_refuse_are_dropped_not_published(tmp_path: Path) -> None:
    long_item = "X" * 65
    path = write(
        tmp_path,
        f"1,{long_item},too long,1,2011-01-01 10:00,1,17850,UK\n"
        "2,A\x01B,control char,1,2011-01-01 10:00,1,17850,UK\n"
        "3,A,fine,1,2011-01-01 10:00,1,17850,UK\n"
        f"4,A,long customer,1,2011-01-01 10:00,1,{'9' * 129},UK\n"
        "5,A\x85B,C1 control,1,2011-01-01 10:00,1,17850,UK\n"
        "6,A,line separator,1,2011-01-01 10:00,1,178\u202850,UK\n",
    )
    frame, report = ingest.clean(ingest.read_purchases(path, COLUMNS), OR_RULES)
    # The same rule as the API's: C0 and C1 controls and line separators are refused.
    assert report.dropped["invalid_id"] == 5
    assert list(frame["item"]) == ["A"]
