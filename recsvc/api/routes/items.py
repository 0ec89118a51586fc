"""One item's neighbours, under stock and rules."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from recsvc import model as lay
from recsvc.answers import recommend as rec
from recsvc.api.routes.deps import (
    VISITOR,
    JSONBytes,
    arms_of,
    count_answer,
    errors_doc,
    settings_of,
    visitor_of,
)
from recsvc.api.schemas import MAX_ITEM_ID_LENGTH, MAX_K, SimilarResponse
from recsvc.api.strict_json import StrictJSONRoute
from recsvc.errors import UnknownItemError
from recsvc.ranking.rules import Category, MerchRules, RuleItem

router = APIRouter(route_class=StrictJSONRoute)


@router.get(
    "/v1/items/{item_id}/similar",
    response_class=JSONBytes,
    responses={200: {"model": SimilarResponse}, **errors_doc(404, 422, 503)},
    summary="Nearest neighbours of one item",
    openapi_extra=VISITOR,
)
async def similar_items(
    item_id: Annotated[
        str, Path(min_length=1, max_length=MAX_ITEM_ID_LENGTH, pattern=lay.ID_PATTERN)
    ],
    request: Request,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    available_only: Annotated[
        bool | None, Query(description="In-stock items only (default: on).")
    ] = None,
    exclude_items: Annotated[
        list[RuleItem] | None, Query(max_length=1000, description="Items never suggested.")
    ] = None,
    only_categories: Annotated[
        list[Category] | None, Query(max_length=200, description="Only these categories.")
    ] = None,
    exclude_categories: Annotated[
        list[Category] | None, Query(max_length=200, description="Never these categories.")
    ] = None,
    min_price: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    max_price: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    max_per_category: Annotated[int | None, Query(ge=1, le=100)] = None,
) -> JSONBytes:
    """The item's neighbours under stock, the service's default rules and the rules in
    the query (the cart's, but for boosts and pins, which take a body), as the same
    suggestion objects as the cart's, with a ``recommendation_id``."""
    rules = MerchRules(
        available_only=available_only,
        exclude_items=exclude_items or [],
        only_categories=only_categories,
        exclude_categories=exclude_categories or [],
        min_price=min_price,
        max_price=max_price,
        max_per_category=max_per_category,
    )
    (view, (got,)), served = await arms_of(request).answer(
        visitor_of(request), lambda store: store.neighbours([item_id])
    )
    if got is None:
        raise UnknownItemError(f"item {item_id!r} is not in model {view.version}")
    ranking = rec.rank_similar(view, settings_of(request), item_id, got, k, rules)
    count_answer(request, view.version, served, ranking.fallback)
    return JSONBytes(rec.render(view, ranking, "similar", served, item_id=item_id))
