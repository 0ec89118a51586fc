"""One item's neighbours."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from recsvc import model as lay
from recsvc.api.routes.deps import JSONBytes, errors_doc, store_of
from recsvc.api.schemas import MAX_ITEM_ID_LENGTH, MAX_K, SimilarResponse
from recsvc.api.strict_json import StrictJSONRoute
from recsvc.errors import UnknownItemError

router = APIRouter(route_class=StrictJSONRoute)


@router.get(
    "/v1/items/{item_id}/similar",
    response_class=JSONBytes,
    responses={200: {"model": SimilarResponse}, **errors_doc(404, 422, 503)},
    summary="Nearest neighbours of one item",
)
async def similar_items(
    item_id: Annotated[
        str, Path(min_length=1, max_length=MAX_ITEM_ID_LENGTH, pattern=lay.ID_PATTERN)
    ],
    request: Request,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
) -> JSONBytes:
    view, (got,) = await store_of(request).neighbours([item_id])
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
