"""The live model: what it is and its evaluation report."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from recsvc.api.routes.deps import JSONBytes, errors_doc, store_of
from recsvc.api.schemas import ModelInfo
from recsvc.api.strict_json import StrictJSONRoute
from recsvc.errors import NotFoundError

router = APIRouter(route_class=StrictJSONRoute)


@router.get(
    "/v1/model",
    response_class=JSONBytes,
    responses={200: {"model": ModelInfo}, **errors_doc(503)},
    summary="The live model",
)
async def model_info(request: Request) -> JSONBytes:
    view = await store_of(request).live_view()
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
        **errors_doc(404, 422, 503),
    },
    summary="The live model's evaluation report (format=json or html)",
)
async def model_report(
    request: Request,
    format: Annotated[Literal["json", "html"], Query()] = "json",
) -> Response:
    version, blob = await store_of(request).report(html=format == "html")
    if blob is None:
        raise NotFoundError(f"model {version} was published without an evaluation report")
    if format == "html":
        return HTMLResponse(blob)
    return Response(blob, media_type="application/json")
