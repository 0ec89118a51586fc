"""What every route shares: the app's store, settings and A/B arms, the visitor header,
the documented error responses, tokens and the answer counter."""

from __future__ import annotations

from typing import Any, cast

import orjson
from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from recsvc import model as lay
from recsvc.api import auth
from recsvc.api.observability import Metrics
from recsvc.api.schemas import ErrorResponse
from recsvc.config import Settings
from recsvc.errors import BadRequestError
from recsvc.experiments.arms import Arms
from recsvc.experiments.experiment import Served
from recsvc.store import Fetched, ModelStore


class JSONBytes(JSONResponse):
    """JSON encoded by orjson. A ``JSONResponse`` so the OpenAPI document declares the
    routes' JSON bodies with their models (a plain ``Response`` made them strings)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# The store and settings are read from app state rather than injected with Depends:
# resolving dependencies measured as one of the largest costs of a cart request.
def store_of(request: Request) -> ModelStore:
    return cast(ModelStore, request.app.state.store)


def settings_of(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def arms_of(request: Request) -> Arms:
    return cast(Arms, request.app.state.arms)


VISITOR_HEADER = "x-visitor-id"


MAX_VISITOR_ID_LENGTH = 128


VISITOR_PARAMETER = {
    "name": VISITOR_HEADER,
    "in": "header",
    "required": False,
    "description": "A stable id of the visitor (a cookie's), for a sticky A/B arm: without "
    "one (and without a customer id) the live version answers, outside any test.",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_VISITOR_ID_LENGTH,
        "pattern": lay.ID_PATTERN,
    },
}


VISITOR = {"parameters": [VISITOR_PARAMETER]}


def visitor_of(request: Request) -> str | None:
    """The ``X-Visitor-ID`` header, checked as the OpenAPI document says."""
    value = request.headers.get(VISITOR_HEADER)
    if value is None:
        return None
    if not lay.valid_id(value, MAX_VISITOR_ID_LENGTH):
        raise BadRequestError(
            f"{VISITOR_HEADER}: 1 to {MAX_VISITOR_ID_LENGTH} printable characters, not blank"
        )
    return value


def errors_doc(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "Malformed request",
        401: "A valid bearer token is required",
        403: "The admin API is disabled",
        404: "Not found",
        413: "Request body over RECSVC_MAX_BODY_BYTES",
        422: "Invalid request",
        503: "Redis unavailable or overloaded, no model published, or the live model incomplete",
    }
    return {s: {"model": ErrorResponse, "description": described[s]} for s in statuses}


ERRORS = errors_doc(422, 503)


BODY_ERRORS = errors_doc(400, 413, 422, 503)


def require_token(request: Request, token: SecretStr | None, api: str, setting: str) -> None:
    auth.require(request.headers.get("authorization"), auth.Guarded(token, api, setting))


def actor_of(request: Request) -> str:
    """Who made an audited change: the admin API, the client's address and the request."""
    host = request.client.host if request.client else "unknown"
    return f"api {host} request {request.state.request_id}"


def count_customer(request: Request, fetched: Fetched) -> None:
    """How a stored customer's answer was made (``recsvc_customer_answers_total``)."""
    metrics: Metrics = request.app.state.metrics
    history = fetched.history
    if history is None:
        return
    path = "picks" if fetched.ranked is not None else "events" if history.merged else "online"
    metrics.customer_paths[path].inc()


def count_answer(request: Request, version: str, served: Served, fallback: bool) -> None:
    """One answer: for the sales counts (answers per arm) and the metrics."""
    arms_of(request).count(version, served)
    metrics: Metrics = request.app.state.metrics
    metrics.answers_by_arm[served.arm].inc()
    if fallback:
        metrics.fallbacks.inc()
