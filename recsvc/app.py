"""The ASGI application: ``create_app(settings)`` wires settings, Redis and the routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from recsvc import __version__
from recsvc.config import Settings
from recsvc.embedded import redis_url_for
from recsvc.errors import RecsvcError, StoreUnavailableError, UnauthorizedError
from recsvc.layout import Layout
from recsvc.observability import LOGGER, Metrics, ObservabilityMiddleware, configure_logging
from recsvc.routes import JSONBytes, router
from recsvc.store import ModelStore


def _error(status: int, code: str, message: str, details: Any = None) -> JSONBytes:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONBytes({"error": body}, status_code=status)


async def _recsvc_error(request: Request, exc: Exception) -> JSONBytes:
    assert isinstance(exc, RecsvcError)
    if isinstance(exc, StoreUnavailableError):
        request.app.state.metrics.redis_errors.inc()
        logging.getLogger(LOGGER).warning(
            "redis unavailable",
            extra={"fields": {"request_id": _request_id(request), "error": exc.message}},
        )
    response = _error(exc.status_code, exc.code, exc.message)
    if isinstance(exc, UnauthorizedError):
        response.headers["www-authenticate"] = "Bearer"
    return response


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


async def _validation_error(request: Request, exc: Exception) -> JSONBytes:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return _error(422, "invalid_request", f"{where}: {first['msg']}", details)


async def _http_error(request: Request, exc: Exception) -> JSONBytes:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _error(exc.status_code, code, str(exc.detail))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with ExitStack() as stack:
            url = stack.enter_context(redis_url_for(settings.redis_url, settings.data_dir))
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=settings.redis_max_connections,
                timeout=settings.redis_timeout_s,
                socket_timeout=settings.redis_timeout_s,
                socket_connect_timeout=settings.redis_timeout_s,
            )
            client = aioredis.Redis(connection_pool=pool)
            app.state.store = ModelStore(client, Layout(settings.key_prefix))
            try:
                yield
            finally:
                await client.aclose()
                await pool.aclose()

    app = FastAPI(
        title="recsvc",
        version=__version__,
        summary="Cross-sell and upsell suggestions from purchase history.",
        lifespan=lifespan,
        default_response_class=JSONBytes,
    )
    app.state.settings = settings
    app.state.metrics = metrics = Metrics()
    logger = configure_logging(settings.log_level)
    app.add_middleware(
        ObservabilityMiddleware, metrics=metrics, logger=logger, log=settings.log_requests
    )
    app.add_exception_handler(RecsvcError, _recsvc_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.include_router(router)
    return app


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` with several workers: settings from the environment."""
    return create_app(Settings())
