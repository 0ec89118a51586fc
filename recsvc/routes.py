"""HTTP routes: validate, fetch in one round trip, call the ranking, encode.

Responses are encoded with orjson directly (``JSONBytes``); FastAPI's default encoder
costs far more than the rest of a request here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, cast

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from recsvc.config import Settings
from recsvc.errors import (
    NoLiveModelError,
    NotFoundError,
    StoreUnavailableError,
    UnknownItemError,
)
from recsvc.ranking import Ranking, Rules, Seed, rank, recency_weights
from recsvc.schemas import (
    MAX_ITEM_ID_LENGTH,
    CartRequest,
    CartResponse,
    ErrorResponse,
    HistoryRequest,
    HistoryResponse,
    SimilarResponse,
)
from recsvc.store import ModelStore, ModelView, decode_neighbours


class JSONBytes(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# The store and settings are read from app state rather than injected with Depends:
# resolving dependencies measured as one of the largest costs of a cart request.
def _store(request: Request) -> ModelStore:
    return cast(ModelStore, request.app.state.store)


def _settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "Invalid request"},
    503: {"model": ErrorResponse, "description": "Redis unavailable or no model published"},
}

router = APIRouter()


def _seeds(
    view: ModelView,
    item_ids: Sequence[str],
    weights: Sequence[float],
    blobs: Sequence[bytes | None],
) -> list[Seed]:
    seeds = []
    for item_id, weight, blob in zip(item_ids, weights, blobs, strict=True):
        if blob is None:
            continue  # unknown to this model: ignored, as documented
        indices, scores = decode_neighbours(blob)
        seeds.append(Seed(item_id, view.index[item_id], weight, indices, scores))
    return seeds


def _suggestions(ranking: Ranking) -> list[dict[str, Any]]:
    return [
        {"item_id": s.item_id, "score": s.score, "because": s.because, "source": s.source}
        for s in ranking.suggestions
    ]


@router.post(
    "/v1/recommendations/cart",
    response_class=JSONBytes,
    responses={200: {"model": CartResponse}, **_ERRORS},
    summary="Cross-sell for a cart",
)
async def cart_recommendations(body: CartRequest, request: Request) -> JSONBytes:
    store, settings = _store(request), _settings(request)
    lines = body.lines()
    ids = [line.item_id for line in lines]
    view, blobs = await store.neighbours(ids)
    seeds = _seeds(view, ids, [1.0] * len(ids), blobs)
    in_cart = {view.index[i] for i in ids if i in view.index}
    ranking = rank(
        seeds,
        view.item_ids,
        view.popular,
        Rules(k=body.k, exclude=in_cart, because_limit=settings.because_limit),
    )
    return JSONBytes(
        {
            "model_version": view.version,
            "cross_sell": _suggestions(ranking),
            "fallback": ranking.fallback,
        }
    )


@router.post(
    "/v1/recommendations/history",
    response_class=JSONBytes,
    responses={200: {"model": HistoryResponse}, **_ERRORS},
    summary="Suggestions from a customer's past purchases",
)
async def history_recommendations(body: HistoryRequest, request: Request) -> JSONBytes:
    store, settings = _store(request), _settings(request)
    # A repeated item adds up its recency weights: bought often and lately weighs most.
    weights: dict[str, float] = {}
    times = [p.purchased_at for p in body.purchases]
    for purchase, weight in zip(
        body.purchases, recency_weights(times, settings.history_half_life_days), strict=True
    ):
        weights[purchase.item_id] = weights.get(purchase.item_id, 0.0) + weight
    ids = list(weights)
    view, blobs = await store.neighbours(ids)
    seeds = _seeds(view, ids, [weights[i] for i in ids], blobs)
    bought = {view.index[i] for i in ids if i in view.index}
    serving = view.meta.get("serving", {})
    repurchase = float(serving.get("repurchase_weight", 0.0))
    rules = Rules(
        k=body.k,
        exclude=bought if body.exclude_purchased else frozenset(),
        repurchase_weight=0.0 if body.exclude_purchased else repurchase,
        repurchase_bonus=float(serving.get("repurchase_bonus", 0.0)),
        because_limit=settings.because_limit,
        negatives=False,
    )
    ranking = rank(seeds, view.item_ids, view.popular, rules)
    return JSONBytes(
        {
            "model_version": view.version,
            "recommendations": _suggestions(ranking),
            "fallback": ranking.fallback,
        }
    )


@router.get(
    "/v1/items/{item_id}/similar",
    response_class=JSONBytes,
    responses={200: {"model": SimilarResponse}, 404: {"model": ErrorResponse}, **_ERRORS},
    summary="Nearest neighbours of one item",
)
async def similar_items(
    item_id: Annotated[str, Path(min_length=1, max_length=MAX_ITEM_ID_LENGTH)],
    request: Request,
    k: Annotated[int, Query(ge=1, le=100)] = 10,
) -> JSONBytes:
    view, (blob,) = await _store(request).neighbours([item_id])
    if blob is None:
        raise UnknownItemError(f"item {item_id!r} is not in model {view.version}")
    indices, scores = decode_neighbours(blob)
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


@router.get("/v1/model", response_class=JSONBytes, responses=_ERRORS, summary="The live model")
async def model_info(request: Request) -> JSONBytes:
    view = await _store(request).live_view()
    return JSONBytes({"model_version": view.version, **view.meta})


@router.get(
    "/v1/model/report",
    responses={
        200: {"content": {"application/json": {}, "text/html": {}}},
        404: {"model": ErrorResponse},
        **_ERRORS,
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


@router.get("/healthz", response_class=JSONBytes, summary="Liveness: the process answers")
async def healthz() -> JSONBytes:
    return JSONBytes({"status": "alive"})


@router.get(
    "/readyz",
    response_class=JSONBytes,
    responses={503: {"model": ErrorResponse}},
    summary="Readiness: Redis answers and a model is live",
)
async def readyz(request: Request) -> JSONBytes:
    store = _store(request)
    try:
        await store.ping()
        view = await store.live_view()
    except (StoreUnavailableError, NoLiveModelError) as exc:
        return JSONBytes(
            {"status": "not_ready", "error": {"code": exc.code, "message": exc.message}},
            status_code=503,
        )
    return JSONBytes({"status": "ready", "model_version": view.version})
