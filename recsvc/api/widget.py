"""The storefront widget: ``GET /widget.js``, a dependency-free script that renders the
cart's cross-sell and upsell slots from ``POST /v1/recommendations/cart`` (README,
"Storefront widget"). It is served from the package, so it works on an air-gapped
cluster; the service answers the shop's origin when ``RECSVC_CORS_ORIGINS`` names it."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

WIDGET = "widget.js"


def widget_source() -> bytes:
    return (resources.files("recsvc") / "static" / WIDGET).read_bytes()


def widget_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    body = widget_source()

    @router.get("/widget.js")
    async def widget() -> Response:
        return Response(
            body,
            media_type="text/javascript",
            headers={"cache-control": "public, max-age=300"},
        )

    return router
