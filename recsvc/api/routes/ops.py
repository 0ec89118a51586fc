"""Metrics, liveness (no I/O) and readiness (Redis and a live, complete model)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from recsvc.api.observability import Metrics
from recsvc.api.routes.deps import JSONBytes, arms_of, store_of
from recsvc.api.schemas import Liveness, NotReady, Readiness
from recsvc.api.strict_json import StrictJSONRoute
from recsvc.errors import RecsvcError
from recsvc.store import readiness

router = APIRouter(route_class=StrictJSONRoute)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    m: Metrics = request.app.state.metrics
    try:
        view = await store_of(request).live_view()
        m.observe_model(view.version, view.meta.get("trained_at"))
        m.sales.rows, m.sales.answers = await arms_of(request).sales_totals()
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
        health = await readiness(store_of(request))
    except RecsvcError as exc:
        return JSONBytes(
            {"status": "not_ready", "error": {"code": exc.code, "message": exc.message}},
            status_code=503,
        )
    return JSONBytes(
        {"status": "ready", "model_version": health.view.version, "warnings": health.warnings}
    )
