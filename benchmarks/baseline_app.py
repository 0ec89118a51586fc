"""The floor the cart endpoint is compared to: FastAPI, a parsed body, one Redis HMGET,
bytes out. No ranking, no model logic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel

from recsvc.config import Settings
from recsvc.model import Layout, decode_json


class Body(BaseModel):
    items: list[str]
    k: int = 10


@asynccontextmanager
async def live_model(app: FastAPI) -> AsyncIterator[None]:
    """A Redis client, the live version's neighbours key and item ids, on ``app.state``
    (shared with ``ceiling_app``)."""
    settings = Settings()
    layout = Layout(settings.key_prefix)
    assert settings.redis_url
    client = aioredis.Redis.from_url(settings.redis_url)
    version = (await client.get(layout.live)).decode()
    app.state.client, app.state.key = client, layout.neighbours(version)
    app.state.item_ids = decode_json(await client.get(layout.items(version)))
    yield
    await client.aclose()


def create() -> FastAPI:
    app = FastAPI(lifespan=live_model)

    @app.post("/v1/recommendations/cart")
    async def cart(body: Body, request: Request) -> Response:
        blobs = await request.app.state.client.hmget(request.app.state.key, body.items)
        return Response(
            b'{"n":%d}' % sum(b is not None for b in blobs), media_type="application/json"
        )

    return app
