"""The ceiling the full cart answer is compared to: the stack's own cost for a cart.

FastAPI with a pydantic body, one ``HMGET`` of the cart items' packed complement lists,
numpy decode, sum and top-10 over the candidates only, orjson out. No rules, no catalog
facts, no upsell, no version check: what any endpoint on this stack pays at least.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
import orjson
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel

from recsvc.config import Settings
from recsvc.layout import NEIGHBOUR_DTYPE, Layout, decode_json


class Body(BaseModel):
    items: list[str]
    k: int = 10


def create() -> FastAPI:
    settings = Settings()
    layout = Layout(settings.key_prefix)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        assert settings.redis_url
        client = aioredis.Redis.from_url(settings.redis_url)
        version = (await client.get(layout.live)).decode()
        app.state.client, app.state.key = client, layout.neighbours(version)
        app.state.item_ids = decode_json(await client.get(layout.items(version)))
        yield
        await client.aclose()

    app = FastAPI(lifespan=lifespan)

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
