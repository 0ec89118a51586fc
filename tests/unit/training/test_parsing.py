"""Golden tests of how awkward export columns are read: numbers, dates, delimiters."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from training.errors import InputError
from training.stages import parsing


def numbers(*texts: str) -> list[float | None]:
    column = pd.Series(list(texts))
    got = parsing.to_numbers(column, parsing.number_style(texts, "price"))
    return [None if pd.isna(v) else float(v) for v in got]


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (("12.50", "3", "1,250.00"), [12.5, 3.0, 1250.0]),  # point decimals, comma thousands
        (("12,50", "3", "1.250,00"), [12.5, 3.0, 1250.0]),  # comma decimals, point thousands
        (("1,250", "2,500"), [1250.0, 2500.0]),  # three digits after a comma: thousands
        (("1,250", "2,5"), [1.25, 2.5]),  # ... unless the column shows a decimal comma
        (("€ 12,50", "12,50 €", "EUR 3,10"), [12.5, 12.5, 3.1]),  # currency signs and codes
        (("1 250,75", "1\u00a0250,75"), [1250.75, 1250.75]),  # spaces as thousands
        (("-2,5", "0,99"), [-2.5, 0.99]),
        (("n/a", "4.5", ""), [None, 4.5, None]),
    ],
)
def test_numbers_are_read_in_the_columns_own_style(
    texts: tuple[str, ...], expected: list[float | None]
) -> None:
    assert numbers(*texts) == expected


def test_a_column_with_both_decimal_styles_is_refused() -> None:
    with pytest.raises(InputError, match=r"column 'price' writes decimals both ways"):
        parsing.number_style(["12.50", "3,75"], "price")


def dates(*texts: str, date_format: str | None = None) -> list[str]:
    got = parsing.to_timestamps(pd.Series(list(texts)), "Created at", date_format)
    return [v.isoformat() if not pd.isna(v) else "NaT" for v in got]


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        # A day above 12 shows the order: day-first.
        (("06/01/2025", "13/01/2025"), ["2025-01-06T00:00:00+00:00", "2025-01-13T00:00:00+00:00"]),
        # A month above 12 ... is a day in second place: month-first.
        (("06/01/2025", "01/13/2025"), ["2025-06-01T00:00:00+00:00", "2025-01-13T00:00:00+00:00"]),
        # Dots, two-digit years, times.
        (("6.1.25 10:31", "31.12.24 23:59"),
         ["2025-01-06T10:31:00+00:00", "2024-12-31T23:59:00+00:00"]),
        # Offsets honoured, everything in UTC.
        (("2025-01-06 10:31:00 +0100", "2025-07-01T08:00:00-04:00"),
         ["2025-01-06T09:31:00+00:00", "2025-07-01T12:00:00+00:00"]),
        # The same day both ways needs no choice.
        (("01/01/2025", "02/02/2025"), ["2025-01-01T00:00:00+00:00", "2025-02-02T00:00:00+00:00"]),
        (("2011-12-01 08:26", "not a date"), ["2011-12-01T08:26:00+00:00", "NaT"]),
    ],
)  # fmt: skip
def test_dates_are_read_in_the_columns_own_order(
    texts: tuple[str, ...], expected: list[str]
) -> None:
    assert dates(*texts) == expected


def test_dates_that_read_both_ways_are_refused_with_both_readings() -> None:
    with pytest.raises(InputError) as refused:
        dates("06/01/2025", "03/02/2025", "12/11/2025")
    message = str(refused.value)
    assert "column 'Created at': every date reads both ways" in message
    assert "'06/01/2025' is 6 January 2025 day-first or 1 June 2025 month-first" in message
    assert "--date-format day-first" in message


def test_a_column_with_both_orders_is_refused() -> None:
    with pytest.raises(InputError, match=r"day-first .* and month-first"):
        dates("13/01/2025", "01/13/2025")


@pytest.mark.parametrize(
    ("date_format", "expected"),
    [
        ("day-first", "2025-01-06T00:00:00+00:00"),
        ("month-first", "2025-06-01T00:00:00+00:00"),
        ("%d/%m/%Y", "2025-01-06T00:00:00+00:00"),
    ],
)
def test_date_format_settles_the_order(date_format: str, expected: str) -> None:
    assert dates("06/01/2025", "03/02/2025", date_format=date_format)[0] == expected


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_delimiter_is_sniffed_from_the_header(delimiter: str, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    header = delimiter.join(["Name", "Email", '"Lineitem name, with a comma"', "Total"])
    path.write_text(header + "\n" + delimiter.join(["#1", "a@b", '"x, y"', "1,5"]) + "\n")
    assert parsing.sniff_delimiter(path) == delimiter


def test_a_column_under_the_parse_rate_is_refused_with_examples() -> None:
    raw = pd.Series(["1", "2", "x", "y", "z", ""])
    parsed = pd.to_numeric(raw, errors="coerce")
    with pytest.raises(InputError) as refused:
        parsing.require_parsed("qty", raw, parsed, "numbers")
    assert "column 'qty': 4 of 6 rows are not numbers (for example 'x', 'y', 'z')" in str(
        refused.value
    )
    parsing.require_parsed("qty", raw[:2], parsed[:2], "numbers")  # all parse: no error
