"""Reading a store's own export without guessing silently: delimiters, numbers, dates.

Each rule looks at the whole column (its distinct values), never at one cell:

- **Delimiter**: ``,`` ``;`` tab or ``|``, whichever splits the header line into the most
  fields outside quotes (``--delimiter`` settles it).
- **Numbers**: a decimal comma is read where the column shows one (``12,50``, or
  ``1.250,00`` with the comma last); ``1,250`` alone (three digits after the comma, no
  other evidence) is a thousands separator, as is the first separator of ``1,250.00``. A
  column that uses both a decimal comma and a decimal point is refused.
- **Dates**: day/month/year forms (``06/01/2025``, ``6.1.25``, ``06-01-2025 10:31``) are
  read day-first when some day is above 12, month-first when some month is; when every
  value reads both ways the column is refused (``--date-format day-first``,
  ``month-first``, or a ``strftime`` format settles it). Time-zone offsets are honoured;
  everything is UTC after.
- **Parse rate**: a column (dates, quantities, prices) that parses for fewer than 95% of
  its rows is refused, naming the column, the count and three offending values, instead
  of dropping the rows that fail.

Every refusal is an ``InputError`` (exit 2) whose message says what to pass to settle it.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from training.errors import InputError

DELIMITERS = (",", ";", "\t", "|")
MIN_PARSE_SHARE = 0.95
"""Share of a column's rows that must parse (dates, quantities, prices)."""

DAY_FIRST, MONTH_FIRST = "day-first", "month-first"
_DMY = re.compile(r"^\s*(\d{1,2})([/.\-])(\d{1,2})\2(\d{4}|\d{2})(?![\d])(.*)$", re.S)
_CURRENCY = re.compile(r"[\s\u00a0\u202f€$£¥₹]|^[A-Z]{3}\s*|\s*[A-Z]{3}$")
_THOUSANDS_COMMA = re.compile(r"-?\d{1,3}(,\d{3})+")
_THOUSANDS_DOT = re.compile(r"-?\d{1,3}(\.\d{3})+")

NumberStyle = Literal["point", "comma"]


def header_key(name: object) -> str:
    """A column name as it is matched: without case, surrounding spaces or a BOM."""
    return str(name).lstrip("\ufeff").strip().casefold()


def _head_text(path: Path, size: int = 65536) -> str:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(size)
    except OSError as exc:
        raise InputError(f"could not read {path}: {exc}") from exc
    return head.decode("utf-8", errors="replace").lstrip("\ufeff")


def sniff_delimiter(path: Path) -> str:
    """The delimiter of a CSV file's header line: the candidate giving the most fields."""
    lines = _head_text(path).splitlines()
    header = lines[0] if lines else ""
    best, fields = ",", 1
    for delimiter in DELIMITERS:
        count = len(next(csv.reader(io.StringIO(header), delimiter=delimiter), []))
        if count > fields:
            best, fields = delimiter, count
    return best


def delimiter_option(text: str) -> str:
    """``--delimiter``: one character, or ``tab``."""
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
    value = named.get(text.lower(), text)
    if len(value) != 1:
        raise InputError(f"--delimiter must be one character (or tab), got {text!r}")
    return value


def _plain_number(text: str) -> str:
    return _CURRENCY.sub("", text.strip())


def number_style(values: Iterable[str], column: str) -> NumberStyle:
    """Whether a column writes decimals with a point or a comma (see the module doc)."""
    comma = point = ""
    for raw in values:
        text = _plain_number(raw)
        if not text:
            continue
        has_comma, has_point = "," in text, "." in text
        if has_comma and has_point:
            if text.rfind(",") > text.rfind("."):
                comma = comma or raw
            else:
                point = point or raw
        elif has_comma:
            if not _THOUSANDS_COMMA.fullmatch(text):
                comma = comma or raw
        elif has_point and not _THOUSANDS_DOT.fullmatch(text):
            point = point or raw
    if comma and point:
        raise InputError(
            f"column {column!r} writes decimals both ways ({point!r} with a point, {comma!r} "
            "with a comma): fix the export so one column uses one"
        )
    return "comma" if comma else "point"


def to_numbers(values: pd.Series, style: NumberStyle) -> pd.Series:
    """Text to floats in ``style``; what does not parse is NaN."""
    text = values.astype(str).where(values.notna(), "").map(_plain_number)
    if style == "comma":
        text = text.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    else:
        text = text.str.replace(",", "", regex=False)
    return pd.to_numeric(text, errors="coerce")


def _readings(match: re.Match[str]) -> tuple[int, int]:
    return int(match.group(1)), int(match.group(3))


def _iso(match: re.Match[str], order: str) -> str:
    first, second = _readings(match)
    day, month = (first, second) if order == DAY_FIRST else (second, first)
    year = match.group(4)
    if len(year) == 2:
        year = "20" + year
    return f"{year}-{month:02d}-{day:02d}{match.group(5)}"


def date_order(values: Sequence[str], column: str) -> str | None:
    """``day-first`` or ``month-first`` for a column of day/month/year dates, None when
    it holds none; refuses a column that reads both ways throughout, or neither."""
    day_above_12 = month_above_12 = None
    ambiguous: list[str] = []
    for value in values:
        match = _DMY.match(value)
        if match is None:
            continue
        first, second = _readings(match)
        if first > 12 and day_above_12 is None:
            day_above_12 = value
        if second > 12 and month_above_12 is None:
            month_above_12 = value
        if first <= 12 and second <= 12 and first != second and len(ambiguous) < 2:
            ambiguous.append(value)
    if day_above_12 and month_above_12:
        raise InputError(
            f"column {column!r} has dates day-first ({day_above_12!r}) and month-first "
            f"({month_above_12!r}): fix the export, or give --date-format"
        )
    if day_above_12:
        return DAY_FIRST
    if month_above_12:
        return MONTH_FIRST
    if not ambiguous:
        return DAY_FIRST if any(_DMY.match(v) for v in values) else None
    shown = "; ".join(
        f"{v!r} is {_day_text(v, DAY_FIRST)} day-first or {_day_text(v, MONTH_FIRST)} month-first"
        for v in ambiguous
    )
    raise InputError(
        f"column {column!r}: every date reads both ways ({shown}); say which with "
        "--date-format day-first, --date-format month-first, or a strftime format such as "
        "--date-format '%d/%m/%Y %H:%M'"
    )


def _day_text(value: str, order: str) -> str:
    match = _DMY.match(value)
    assert match is not None
    return pd.Timestamp(_iso(match, order)[:10]).strftime("%d %B %Y").lstrip("0")


def to_timestamps(values: pd.Series, column: str, date_format: str | None) -> pd.Series:
    """Text to UTC timestamps: the column's own day/month order (or ``date_format``), ISO
    forms and time-zone offsets as written; what does not parse is NaT."""
    text = values.astype(str).where(values.notna(), "").str.strip()
    order = date_format if date_format in (DAY_FIRST, MONTH_FIRST) else None
    if date_format and order is None:
        try:
            return pd.to_datetime(text, format=date_format, errors="coerce", utc=True)
        except ValueError as exc:
            raise InputError(f"--date-format {date_format!r}: {exc}") from exc
    if order is None:
        order = date_order(list(dict.fromkeys(v for v in text if v)), column)
    if order is not None:
        text = text.map(lambda v: _iso(m, order) if (m := _DMY.match(v)) else v)
    return pd.to_datetime(text, errors="coerce", utc=True, format="mixed")


def require_parsed(
    column: str,
    raw: pd.Series,
    parsed: pd.Series,
    what: str,
    rows: np.ndarray | None = None,
    share: float = MIN_PARSE_SHARE,
) -> None:
    """Refuses a column whose values parse for fewer than ``MIN_PARSE_SHARE`` of its rows.

    ``raw`` and ``parsed`` are per distinct value with ``rows`` their row counts (or per
    row, when ``rows`` is None)."""
    counts = np.ones(len(raw), dtype=np.int64) if rows is None else np.asarray(rows)
    failed = parsed.isna().to_numpy()
    total = int(counts.sum())
    bad = int(counts[failed].sum())
    if total == 0 or bad <= (1.0 - share) * total:
        return
    shown = failed & (counts > 0)
    offending = [str(v) if str(v).strip() else "(blank)" for v in raw[shown].tolist()]
    examples = ", ".join(repr(v) for v in list(dict.fromkeys(offending))[:3])
    raise InputError(
        f"column {column!r}: {bad:,} of {total:,} rows are not {what} (for example "
        f"{examples}); more than {1 - share:.0%} fail, so nothing is dropped "
        "silently: check the column mapping and the export's format"
        + (" (--date-format settles a date format)" if what == "dates" else "")
    )
