"""The ceiling the full cart answer is compared to: the stack's own cost for a cart.

FastAPI with a pydantic body, one ``HMGET`` of the cart items' packed complement lists,
numpy decode, sum and top-10 over the candidates only, orjson out. No rules, no catalog
facts, no upsell, no version check: what any endpoint on this stack pays at least.
"""

from __future__ import annotations

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from benchmarks.baseline_app import Body, live_model
from recsvc.model import NEIGHBOUR_DTYPE


def create() -> FastAPI:
    app = FastAPI(lifespan=live_model)

    @app.post("/v1/recommendations/cart")
    async def cart(body: Body, request: Request) -> Response:
        state = request.app.state
        blobs = await state.client.hmget(state.key, body.items)
        lists = [np.frombuffer(b, NEIGHBOUR_DTYPE) for b in blobs if b]
        if not lists:
            return Response(b'{"items":[]}', media_type="application/json")
        packed = np.concatenate(lists)
        candidates, at = np.unique(packed["index"], return_inverse=True)
        sums = np.bincount(at, weights=packed["score"])
        top = np.argsort(-sums)[: body.k]
        ids = state.item_ids
        out = [
            {"item_id": ids[i], "score": s}
            for i, s in zip(candidates[top].tolist(), sums[top].tolist(), strict=True)
        ]
        return Response(orjson.dumps({"items": out}), media_type="application/json")

    return app
