"""Suggestions: for a cart, a history, a stored customer, a batch for e-mail."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import TypeAdapter, ValidationError

from recsvc import model as lay
from recsvc.answers import picks
from recsvc.answers import recommend as rec
from recsvc.api.routes.deps import (
    BODY_ERRORS,
    ERRORS,
    VISITOR,
    JSONBytes,
    arms_of,
    count_answer,
    count_customer,
    settings_of,
    store_of,
    visitor_of,
)
from recsvc.api.schemas import (
    MAX_CUSTOMER_ID_LENGTH,
    MAX_K,
    BatchEntry,
    BatchRequest,
    BatchResponse,
    CartRequest,
    CartResponse,
    CustomerResponse,
    HistoryRequest,
    HistoryResponse,
)
from recsvc.api.strict_json import StrictJSONRoute
from recsvc.ranking import PriceBand
from recsvc.ranking.rules import MerchRules
from recsvc.store import CustomerQuery

router = APIRouter(route_class=StrictJSONRoute)


@router.post(
    "/v1/recommendations/cart",
    response_class=JSONBytes,
    responses={200: {"model": CartResponse}, **BODY_ERRORS},
    summary="Cross-sell for a cart",
    openapi_extra=VISITOR,
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
    arms, settings = arms_of(request), settings_of(request)
    if upsell_k is None:
        upsell_k = settings.upsell_k
    ids = [i for i, _ in lines]
    got, served = await arms.answer(
        visitor_of(request), lambda store: store.lists(ids, alternatives=upsell_k > 0)
    )
    answer = rec.rank_cart(
        got.view, settings, lines, got.complements, k, rules, got.alternatives, upsell_k, band
    )
    count_answer(request, got.view.version, served, answer.cross_sell.fallback)
    return JSONBytes(rec.render_cart(got.view, answer, served))


@router.post(
    "/v1/recommendations/history",
    response_class=JSONBytes,
    responses={200: {"model": HistoryResponse}, **BODY_ERRORS},
    summary="Suggestions from a customer's past purchases",
    openapi_extra=VISITOR,
)
async def history_recommendations(body: HistoryRequest, request: Request) -> JSONBytes:
    settings = settings_of(request)
    weights = rec.history_weights(
        [p.item_id for p in body.purchases],
        [p.purchased_at for p in body.purchases],
        settings.history_half_life_days,
    )
    (view, lists), served = await arms_of(request).answer(
        visitor_of(request), lambda store: store.neighbours(list(weights))
    )
    ranking = rec.rank_history(
        view, settings, weights, lists, body.k, body.exclude_purchased, body.rules
    )
    count_answer(request, view.version, served, ranking.fallback)
    return JSONBytes(rec.render(view, ranking, "recommendations", served))


@router.get(
    "/v1/customers/{customer_id}/recommendations",
    response_class=JSONBytes,
    responses={200: {"model": CustomerResponse}, **ERRORS},
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
    settings = settings_of(request)
    picked = picks.answering(settings, k, exclude_purchased)
    (view, (found,)), served = await arms_of(request).answer(
        customer_id, lambda store: store.customers([CustomerQuery(customer_id)], picked)
    )
    ranking = found.ranked or rec.rank_stored(
        view, settings, found.history, found.lists, k, exclude_purchased
    )
    # Rules in a GET would need a query encoding; the batch endpoint takes them in a body.
    count_answer(request, view.version, served, ranking.fallback)
    count_customer(request, found)
    return JSONBytes(
        rec.render(view, ranking, "recommendations", served, stored=True, customer_id=customer_id)
    )


_ENTRY = TypeAdapter(BatchEntry)


@router.post(
    "/v1/recommendations/batch",
    response_class=JSONBytes,
    responses={200: {"model": BatchResponse}, **BODY_ERRORS},
    summary="Many customers or carts in one call, answered in request order",
)
async def batch_recommendations(body: BatchRequest, request: Request) -> JSONBytes:
    settings = settings_of(request)
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
    got_all = await arms_of(request).customers(
        [CustomerQuery(e.customer_id) if e.customer_id else list(e.items or []) for _, e in valid],
        [e.customer_id for _, e in valid],
        picks.answering(settings, body.k, body.exclude_purchased, body.rules),
    )
    answered = {i: got for (i, _), got in zip(valid, got_all, strict=True)}
    live = next((v for v, _, s in got_all if s.arm != "candidate"), None)
    live_version = live.version if live else (await store_of(request).live_view()).version
    results: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, BatchEntry):
            results.append({"index": index, "error": entry})
            continue
        view, got, served = answered[index]
        stored = entry.customer_id is not None
        if entry.customer_id is not None:
            ranking = got.ranked or rec.rank_stored(
                view, settings, got.history, got.lists, body.k, body.exclude_purchased, body.rules
            )
            count_customer(request, got)
            head: dict[str, Any] = {"index": index, "customer_id": entry.customer_id}
        else:
            items = [(i, 1) for i in entry.items or []]
            ranking = rec.rank_cart(view, settings, items, got.lists, body.k, body.rules).cross_sell
            head = {"index": index}
        count_answer(request, view.version, served, ranking.fallback)
        results.append(
            {
                **head,
                "recommendation_id": rec.new_recommendation_id(view.version, served),
                "model_version": view.version,
                "arm": served.arm,
                "recommendations": rec.suggestions(view, ranking, stored),
                "fallback": ranking.fallback,
            }
        )
    return JSONBytes({"model_version": live_version, "results": results})
