"""Field types that read JSON the way JSON Schema does, so the OpenAPI document and the
validation agree: an ``integer`` is any whole number (``20`` or ``20.0``), never ``true``
or ``"20"``. Request models are strict (no lax coercion) and use these for integers."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BeforeValidator


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # anything else meets the strict int check, which refuses bools and text


WHOLE = BeforeValidator(_whole)
"""Put last in ``Annotated[int, Field(ge=..., le=...), WHOLE]``: a JSON integer, written
with or without a fraction of zero (after the bounds, so they stay in the schema)."""


_ID_NUMBER_LIMIT = 10**18
"""Ids sent as JSON numbers: whole numbers up to 18 digits (the cap keeps the number's
text within every id length limit)."""


def _id_text(value: Any) -> Any:
    if isinstance(value, bool):
        return value  # refused by the string check
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and abs(value) <= _ID_NUMBER_LIMIT:
        return str(value)
    return value


def numeric_id_schema(text_schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of an id that is text, or a whole number (read as its digits)."""
    return {
        "anyOf": [
            text_schema,
            {
                "type": "integer",
                "minimum": -_ID_NUMBER_LIMIT,
                "maximum": _ID_NUMBER_LIMIT,
            },
        ]
    }


ID_NUMBER = BeforeValidator(_id_text)
"""Put after the string constraints of an id type: exports often hold numeric item and
customer ids (``85123``, ``12347``), and a caller that sends them as JSON numbers gets the
same answer as for their text (``"85123"``), not a 422."""


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _datetime_text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value  # built in Python, not read from JSON
    if isinstance(value, str) and _ISO_DATE.match(value):
        return value
    raise ValueError("must be an ISO 8601 date-time string, such as 2025-01-31T12:00:00Z")


DATETIME_TEXT = BeforeValidator(_datetime_text)
"""On a lax ``datetime`` field: ISO 8601 text only, as the schema's ``date-time`` says
(pydantic alone also reads a number, or a string of digits, as Unix seconds)."""

TEXT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
"""Free text (titles, categories, URLs): no control characters (C0, DEL, C1) and no
Unicode line or paragraph separators."""
