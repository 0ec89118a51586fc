"""Request bodies read as strictly as the README promises.

Python's ``json`` (which FastAPI uses) is lenient where an API should not be: it detects
UTF-16 and UTF-32 and skips a UTF-8 byte order mark, keeps the last of two equal keys
(an event's ``order_id`` included), and reads ``NaN``, ``Infinity`` and ``1e999``. Here:

- a body must be UTF-8 without a byte order mark: anything else is a 400;
- a duplicate key, ``NaN`` or ``Infinity`` is invalid JSON: a 422 that says which.

``StrictJSONRoute`` is the routes' class: FastAPI reads every JSON body through
``StrictJSONRequest.json``. (Numbers that overflow to infinity are refused by the models'
``allow_inf_nan=False`` and bounds.)
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

NOT_UTF8 = "request body must be JSON in UTF-8, without a byte order mark"


class _NotJSONError(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _NotJSONError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _constant(name: str) -> Any:
    raise _NotJSONError(f"{name} is not a JSON number")


def loads(body: bytes) -> Any:
    """``body`` as JSON: ``HTTPException(400)`` unless UTF-8 without a BOM (and without
    NUL, which no JSON text holds and UTF-16 does); ``json.JSONDecodeError`` for invalid
    JSON, a duplicate key or a non-finite constant."""
    if body.startswith(codecs.BOM_UTF8) or b"\x00" in body:
        raise HTTPException(400, NOT_UTF8)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, NOT_UTF8) from None
    try:
        return json.loads(text, object_pairs_hook=_object, parse_constant=_constant)
    except _NotJSONError as exc:
        raise json.JSONDecodeError(str(exc), text, 0) from None


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """A FastAPI route whose JSON body is read by ``loads``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict
