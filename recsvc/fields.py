"""Field types that read JSON the way JSON Schema does, so the OpenAPI document and the
validation agree: an ``integer`` is any whole number (``20`` or ``20.0``), never ``true``
or ``"20"``. Request models are strict (no lax coercion) and use these for integers."""

from __future__ import annotations

from typing import Any

from pydantic import BeforeValidator


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # anything else meets the strict int check, which refuses bools and text


WHOLE = BeforeValidator(_whole)
"""Put last in ``Annotated[int, Field(ge=..., le=...), WHOLE]``: a JSON integer, written
with or without a fraction of zero (after the bounds, so they stay in the schema)."""
