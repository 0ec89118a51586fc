"""HTTP routes: validate, fetch in one round trip, call the ranking, encode.

Responses are encoded with orjson directly (``JSONBytes``); FastAPI's default encoder
costs far more than the rest of a request here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast

import orjson
from fastapi import APIRouter, Path, Query, Request, Security
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import SecretStr, TypeAdapter, ValidationError

from recsvc import model as lay
from recsvc.answers import recommend as rec
from recsvc.api import auth
from recsvc.api.observability import Metrics
from recsvc.api.schemas import (
    MAX_CUSTOMER_ID_LENGTH,
    MAX_ITEM_ID_LENGTH,
    MAX_K,
    AdminItemResponse,
    AdminStockResponse,
    AuditResponse,
    BatchEntry,
    BatchRequest,
    BatchResponse,
    CartRequest,
    CartResponse,
    CatalogItem,
    CatalogRequest,
    CatalogResponse,
    CustomerResponse,
    DeletedResponse,
    ErasedResponse,
    ErrorResponse,
    HistoryRequest,
    HistoryResponse,
    Liveness,
    ModelInfo,
    NotReady,
    OrderEvent,
    OrderEventResponse,
    Readiness,
    SimilarResponse,
    StockChange,
    StockRequest,
)
from recsvc.api.strict_json import StrictJSONRoute
from recsvc.config import Settings
from recsvc.errors import (
    BadRequestError,
    NotFoundError,
    RecsvcError,
    UnknownItemError,
)
from recsvc.experiments import attribution
from recsvc.experiments.arms import Arms
from recsvc.experiments.attribution import Line
from recsvc.experiments.experiment import Served
from recsvc.ranking.cart import PriceBand
from recsvc.ranking.rules import MerchRules
from recsvc.store import CustomerQuery, ModelStore, readiness


class JSONBytes(JSONResponse):
    """JSON encoded by orjson. A ``JSONResponse`` so the OpenAPI document declares the
    routes' JSON bodies with their models (a plain ``Response`` made them strings)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# The store and settings are read from app state rather than injected with Depends:
# resolving dependencies measured as one of the largest costs of a cart request.
def _store(request: Request) -> ModelStore:
    return cast(ModelStore, request.app.state.store)


def _settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def _arms(request: Request) -> Arms:
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
_VISITOR = {"parameters": [VISITOR_PARAMETER]}


def _visitor(request: Request) -> str | None:
    """The ``X-Visitor-ID`` header, checked as the OpenAPI document says."""
    value = request.headers.get(VISITOR_HEADER)
    if value is None:
        return None
    if not lay.valid_id(value, MAX_VISITOR_ID_LENGTH):
        raise BadRequestError(
            f"{VISITOR_HEADER}: 1 to {MAX_VISITOR_ID_LENGTH} printable characters, not blank"
        )
    return value


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
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


_ERRORS = _errors(422, 503)
_BODY_ERRORS = _errors(400, 413, 422, 503)

router = APIRouter(route_class=StrictJSONRoute)


@router.post(
    "/v1/recommendations/cart",
    response_class=JSONBytes,
    responses={200: {"model": CartResponse}, **_BODY_ERRORS},
    summary="Cross-sell for a cart",
    openapi_extra=_VISITOR,
)
async def cart_recommendations(body: CartRequest, request: Request) -> JSONBytes:
    band = None
    if body.upsell_band is not None:
        band = PriceBand(body.upsell_band.min_ratio, body.upsell_band.max_ratio)
    return await answer_cart(request, body.lines(), body.k, body.upsell_k, body.rules, band)


async def answer_cart(
    request: Request,
    lines: list[tuple[str, int]],
    k: int,
    upsell_k: int | None = None,
    rules: MerchRules | None = None,
    band: PriceBand | None = None,
) -> JSONBytes:
    """The cart's answer, for the documented route and for its fast lane
    (``recsvc.api.fast_lanes``), which reads the widget's plain bodies without FastAPI's
    request handler."""
    arms, settings = _arms(request), _settings(request)
    if upsell_k is None:
        upsell_k = settings.upsell_k
    ids = [i for i, _ in lines]
    got, served = await arms.answer(
        _visitor(request), lambda store: store.lists(ids, alternatives=upsell_k > 0)
    )
    answer = rec.rank_cart(
        got.view, settings, lines, got.complements, k, rules, got.alternatives, upsell_k, band
    )
    _count(request, got.view.version, served, answer.cross_sell.fallback)
    return JSONBytes(rec.render_cart(got.view, answer, served))


@router.post(
    "/v1/recommendations/history",
    response_class=JSONBytes,
    responses={200: {"model": HistoryResponse}, **_BODY_ERRORS},
    summary="Suggestions from a customer's past purchases",
    openapi_extra=_VISITOR,
)
async def history_recommendations(body: HistoryRequest, request: Request) -> JSONBytes:
    settings = _settings(request)
    weights = rec.history_weights(
        [p.item_id for p in body.purchases],
        [p.purchased_at for p in body.purchases],
        settings.history_half_life_days,
    )
    (view, lists), served = await _arms(request).answer(
        _visitor(request), lambda store: store.neighbours(list(weights))
    )
    ranking = rec.rank_history(
        view, settings, weights, lists, body.k, body.exclude_purchased, body.rules
    )
    _count(request, view.version, served, ranking.fallback)
    return JSONBytes(rec.render(view, ranking, "recommendations", served))


@router.get(
    "/v1/customers/{customer_id}/recommendations",
    response_class=JSONBytes,
    responses={200: {"model": CustomerResponse}, **_ERRORS},
    summary="Suggestions for a customer from their stored purchases",
)
async def customer_recommendations(
    customer_id: Annotated[
        str, Path(min_length=1, max_length=MAX_CUSTOMER_ID_LENGTH, pattern=lay.ID_PATTERN)
    ],
    request: Request,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    exclude_purchased: bool = True,
) -> JSONBytes:
    return await answer_customer(request, customer_id, k, exclude_purchased)


async def answer_customer(
    request: Request, customer_id: str, k: int, exclude_purchased: bool
) -> JSONBytes:
    """A stored customer's answer, for the documented route and its fast lane."""
    settings = _settings(request)
    (view, (found,)), served = await _arms(request).answer(
        customer_id, lambda store: store.customers([CustomerQuery(customer_id)])
    )
    ranking = rec.rank_stored(view, settings, found.history, found.lists, k, exclude_purchased)
    # Rules in a GET would need a query encoding; the batch endpoint takes them in a body.
    _count(request, view.version, served, ranking.fallback)
    return JSONBytes(rec.render(view, ranking, "recommendations", served, customer_id=customer_id))


_ENTRY = TypeAdapter(BatchEntry)


@router.post(
    "/v1/recommendations/batch",
    response_class=JSONBytes,
    responses={200: {"model": BatchResponse}, **_BODY_ERRORS},
    summary="Many customers or carts in one call, answered in request order",
)
async def batch_recommendations(body: BatchRequest, request: Request) -> JSONBytes:
    settings = _settings(request)
    entries: list[BatchEntry | dict[str, Any]] = []
    for raw in body.requests:
        try:
            entries.append(_ENTRY.validate_python(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "entry"
            entries.append({"code": "invalid_request", "message": f"{where}: {first['msg']}"})
    # Each entry from its customer's A/B arm (a cart, naming nobody, from the live version).
    valid = [(i, e) for i, e in enumerate(entries) if isinstance(e, BatchEntry)]
    got_all = await _arms(request).customers(
        [CustomerQuery(e.customer_id) if e.customer_id else list(e.items or []) for _, e in valid],
        [e.customer_id for _, e in valid],
    )
    answered = {i: got for (i, _), got in zip(valid, got_all, strict=True)}
    live = next((v for v, _, s in got_all if s.arm != "candidate"), None)
    live_version = live.version if live else (await _store(request).live_view()).version
    results: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, BatchEntry):
            results.append({"index": index, "error": entry})
            continue
        view, got, served = answered[index]
        if entry.customer_id is not None:
            ranking = rec.rank_stored(
                view, settings, got.history, got.lists, body.k, body.exclude_purchased, body.rules
            )
            head: dict[str, Any] = {"index": index, "customer_id": entry.customer_id}
        else:
            items = [(i, 1) for i in entry.items or []]
            ranking = rec.rank_cart(view, settings, items, got.lists, body.k, body.rules).cross_sell
            head = {"index": index}
        _count(request, view.version, served, ranking.fallback)
        results.append(
            {
                **head,
                "recommendation_id": rec.new_recommendation_id(view.version, served),
                "model_version": view.version,
                "arm": served.arm,
                "recommendations": rec.suggestions(view, ranking),
                "fallback": ranking.fallback,
            }
        )
    return JSONBytes({"model_version": live_version, "results": results})


_BEARER = HTTPBearer(auto_error=False, description="RECSVC_ADMIN_TOKEN")
"""Declares the admin routes' bearer scheme in OpenAPI; ``_require_admin`` checks it."""


def _require_admin(request: Request) -> None:
    """The admin bearer token from settings, compared in constant time."""
    _require_token(request, _settings(request).admin_token, "admin", "RECSVC_ADMIN_TOKEN")


def _require_token(request: Request, token: SecretStr | None, api: str, setting: str) -> None:
    auth.require(request.headers.get("authorization"), auth.Guarded(token, api, setting))


@router.patch(
    "/v1/admin/items/{item_id}",
    response_class=JSONBytes,
    responses={200: {"model": AdminItemResponse}, **_errors(400, 401, 403, 404, 413, 422, 503)},
    summary="Mark one item (un)available or reprice it, until the next training",
)
async def admin_item(
    item_id: Annotated[
        str, Path(min_length=1, max_length=MAX_ITEM_ID_LENGTH, pattern=lay.ID_PATTERN)
    ],
    body: StockChange,
    request: Request,
    _token: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> JSONBytes:
    _require_admin(request)
    version, unknown = await _store(request).admin.set_stock(
        {item_id: body.model_dump(exclude_none=True)}
    )
    if unknown:
        raise UnknownItemError(f"item {item_id!r} is not in the live model")
    return JSONBytes({"model_version": version, "updated": [item_id]})


@router.post(
    "/v1/admin/stock",
    response_class=JSONBytes,
    responses={200: {"model": AdminStockResponse}, **_errors(400, 401, 403, 413, 422, 503)},
    summary="Availability and prices of many items at once, until the next training",
)
async def admin_stock(
    body: StockRequest,
    request: Request,
    _token: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> JSONBytes:
    _require_admin(request)
    changes = {
        line.item_id: line.model_dump(exclude_none=True, exclude={"item_id"}) for line in body.items
    }
    version, unknown = await _store(request).admin.set_stock(changes)
    updated = len(changes) - len(unknown)
    return JSONBytes({"model_version": version, "updated": updated, "unknown": unknown})


def _actor(request: Request) -> str:
    """Who made an audited change: the admin API, the client's address and the request."""
    host = request.client.host if request.client else "unknown"
    return f"api {host} request {request.state.request_id}"


def _catalog_answer(version: str, ids: list[str], new: list[str]) -> JSONBytes:
    return JSONBytes({"model_version": version, "updated": ids, "new": new})


@router.put(
    "/v1/admin/catalog/items/{item_id}",
    response_class=JSONBytes,
    responses={200: {"model": CatalogResponse}, **_errors(400, 401, 403, 413, 422, 503)},
    summary="Add an item to the catalog, or change its facts, before the next training",
)
async def admin_put_item(
    item_id: Annotated[
        str, Path(min_length=1, max_length=MAX_ITEM_ID_LENGTH, pattern=lay.ID_PATTERN)
    ],
    body: CatalogItem,
    request: Request,
    _token: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> JSONBytes:
    _require_admin(request)
    facts = {item_id: body.model_dump(exclude_none=True)}
    version, new = await _store(request).admin.put_items(facts, _actor(request))
    return _catalog_answer(version, [item_id], new)


@router.post(
    "/v1/admin/catalog",
    response_class=JSONBytes,
    responses={200: {"model": CatalogResponse}, **_errors(400, 401, 403, 413, 422, 503)},
    summary="Add or change many catalog items at once, before the next training",
)
async def admin_put_items(
    body: CatalogRequest,
    request: Request,
    _token: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> JSONBytes:
    _require_admin(request)
    facts = {
        line.item_id: line.model_dump(exclude_none=True, exclude={"item_id"}) for line in body.items
    }
    version, new = await _store(request).admin.put_items(facts, _actor(request))
    return _catalog_answer(version, list(facts), new)


@router.delete(
    "/v1/admin/catalog/items/{item_id}",
    response_class=JSONBytes,
    responses={200: {"model": DeletedResponse}, **_errors(400, 401, 403, 422, 503)},
    summary="Delete an item: never suggested again until it is put back (audited)",
)
async def admin_delete_item(
    item_id: Annotated[
        str, Path(min_length=1, max_length=MAX_ITEM_ID_LENGTH, pattern=lay.ID_PATTERN)
    ],
    request: Request,
    _token: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> JSONBytes:
    _require_admin(request)
    version = await _store(request).admin.delete_items([item_id], _actor(request))
    return JSONBytes({"model_version": version, "deleted": [item_id]})


@router.delete(
    "/v1/admin/customers/{customer_id}",
    response_class=JSONBytes,
    responses={200: {"model": ErasedResponse}, **_errors(400, 401, 403, 422, 503)},
    summary="Erase a customer's stored history from every version, for a privacy request "
    "(audited; no later training stores it again)",
)
async def admin_erase_customer(
    customer_id: Annotated[
        str, Path(min_length=1, max_length=MAX_CUSTOMER_ID_LENGTH, pattern=lay.ID_PATTERN)
    ],
    request: Request,
    _token: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> JSONBytes:
    _require_admin(request)
    versions = await _store(request).admin.erase_customers([customer_id], _actor(request))
    return JSONBytes({"erased": [customer_id], "versions": versions})


@router.get(
    "/v1/admin/audit",
    response_class=JSONBytes,
    responses={200: {"model": AuditResponse}, **_errors(400, 401, 403, 422, 503)},
    summary="The latest catalog changes and erasures, newest first",
)
async def admin_audit(
    request: Request,
    count: Annotated[int, Query(ge=1, le=1000)] = 100,
    _token: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> JSONBytes:
    _require_admin(request)
    unknown = set(request.query_params) - {"count"}
    if unknown:
        raise BadRequestError(f"unknown query parameters: {', '.join(sorted(unknown))}")
    return JSONBytes({"entries": await _store(request).admin.audit_log(count)})


_INGEST = HTTPBearer(auto_error=False, description="RECSVC_INGEST_TOKEN")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@router.post(
    "/v1/events/orders",
    status_code=202,
    response_class=JSONBytes,
    responses={202: {"model": OrderEventResponse}, **_errors(400, 401, 403, 413, 422, 503)},
    summary="A live order: the customer's next answer knows it at once (no retrain), and "
    "the next training folds it in; a repeated order id is ignored",
)
async def order_event(
    body: OrderEvent,
    request: Request,
    _token: Annotated[HTTPAuthorizationCredentials | None, Security(_INGEST)] = None,
) -> JSONBytes:
    settings = _settings(request)
    _require_token(request, settings.ingest_token, "order-event", "RECSVC_INGEST_TOKEN")
    when = body.purchased_at if body.purchased_at.tzinfo else body.purchased_at.replace(tzinfo=UTC)
    event = body.model_dump(mode="json", exclude_none=True)
    event["purchased_at"] = when.isoformat()
    lines = [
        Line(line.quantity, line.price, line.recommendation_id, line.slot, line.position)
        for line in body.items
    ]
    credit = attribution.credit(lines, body.recommendation_id, body.slot)
    new, trimmed = await _store(request).events.record_order(
        body.order_id,
        body.customer_id,
        [line.item_id for line in body.items],
        (when - _EPOCH).days,
        event,
        keep_seconds=int(settings.event_dedupe_days * 86400),
        stream_max=settings.events_max,
        credit=credit.script_argument(),
    )
    metrics: Metrics = request.app.state.metrics
    metrics.events.labels("accepted" if new else "duplicate").inc()
    if new:
        metrics.events_trimmed.set(trimmed)
    return JSONBytes(
        {
            "order_id": body.order_id,
            "duplicate": not new,
            "attributed_lines": credit.lines if new else 0,
            "unknown_recommendations": credit.unknown,
        },
        status_code=202,
    )


def _count(request: Request, version: str, served: Served, fallback: bool) -> None:
    """One answer: for the sales counts (answers per arm) and the metrics."""
    _arms(request).count(version, served)
    metrics: Metrics = request.app.state.metrics
    metrics.answers_by_arm[served.arm].inc()
    if fallback:
        metrics.fallbacks.inc()


@router.get(
    "/v1/items/{item_id}/similar",
    response_class=JSONBytes,
    responses={200: {"model": SimilarResponse}, **_errors(404, 422, 503)},
    summary="Nearest neighbours of one item",
)
async def similar_items(
    item_id: Annotated[
        str, Path(min_length=1, max_length=MAX_ITEM_ID_LENGTH, pattern=lay.ID_PATTERN)
    ],
    request: Request,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
) -> JSONBytes:
    view, (got,) = await _store(request).neighbours([item_id])
    if got is None:
        raise UnknownItemError(f"item {item_id!r} is not in model {view.version}")
    indices, scores = got.indices, got.scores
    positive = scores > 0  # negative weights are anti-neighbours, not similar items
    indices, scores = indices[positive], scores[positive]
    return JSONBytes(
        {
            "model_version": view.version,
            "item_id": item_id,
            "similar": [
                {"item_id": view.item_ids[i], "score": float(s)}
                for i, s in zip(indices[:k].tolist(), scores[:k].tolist(), strict=True)
            ],
        }
    )


@router.get(
    "/v1/model",
    response_class=JSONBytes,
    responses={200: {"model": ModelInfo}, **_errors(503)},
    summary="The live model",
)
async def model_info(request: Request) -> JSONBytes:
    view = await _store(request).live_view()
    return JSONBytes({"model_version": view.version, **view.meta})


@router.get(
    "/v1/model/report",
    responses={
        200: {
            "description": "The report",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/html": {"schema": {"type": "string"}},
            },
        },
        **_errors(404, 422, 503),
    },
    summary="The live model's evaluation report (format=json or html)",
)
async def model_report(
    request: Request,
    format: Annotated[Literal["json", "html"], Query()] = "json",
) -> Response:
    version, blob = await _store(request).report(html=format == "html")
    if blob is None:
        raise NotFoundError(f"model {version} was published without an evaluation report")
    if format == "html":
        return HTMLResponse(blob)
    return Response(blob, media_type="application/json")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    m: Metrics = request.app.state.metrics
    try:
        view = await _store(request).live_view()
        m.observe_model(view.version, view.meta.get("trained_at"))
        m.sales.rows, m.sales.answers = await _arms(request).sales_totals()
    except RecsvcError:
        pass  # the counters are still worth scraping; readiness reports what is wrong
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/healthz",
    response_class=JSONBytes,
    responses={200: {"model": Liveness}},
    summary="Liveness: the process answers",
)
async def healthz() -> JSONBytes:
    return JSONBytes({"status": "alive"})


@router.get(
    "/readyz",
    response_class=JSONBytes,
    responses={200: {"model": Readiness}, 503: {"model": NotReady}},
    summary="Readiness: Redis answers and the live model is complete",
)
async def readyz(request: Request) -> JSONBytes:
    try:
        health = await readiness(_store(request))
    except RecsvcError as exc:
        return JSONBytes(
            {"status": "not_ready", "error": {"code": exc.code, "message": exc.message}},
            status_code=503,
        )
    return JSONBytes(
        {"status": "ready", "model_version": health.view.version, "warnings": health.warnings}
    )
