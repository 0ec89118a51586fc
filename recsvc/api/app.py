"""The ASGI application: ``create_app(settings)`` wires settings, Redis and the routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from recsvc import __version__
from recsvc.api import fast_lanes
from recsvc.api.auth import Guarded, TokenGuard
from recsvc.api.docs import docs_router
from recsvc.api.observability import Metrics, ObservabilityMiddleware, configure_logging
from recsvc.api.routes import JSONBytes, router
from recsvc.api.widget import widget_router
from recsvc.config import LOGGER, Settings, SettingsError, load_settings
from recsvc.errors import (
    ModelIncompleteError,
    OverloadedError,
    RecsvcError,
    StoreUnavailableError,
    UnauthorizedError,
)
from recsvc.experiments.arms import Arms
from recsvc.store import ModelStore
from recsvc.store import backend as storage
from recsvc.store.embedded import redis_url_for


def _error(status: int, code: str, message: str, details: Any = None) -> JSONBytes:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONBytes({"error": body}, status_code=status)


async def _recsvc_error(request: Request, exc: Exception) -> JSONBytes:
    assert isinstance(exc, RecsvcError)
    if isinstance(exc, OverloadedError):
        request.app.state.metrics.overloaded.inc()
    elif isinstance(exc, StoreUnavailableError):
        request.app.state.metrics.redis_errors.inc()
    if isinstance(exc, StoreUnavailableError | ModelIncompleteError):
        logging.getLogger(LOGGER).warning(
            exc.code,
            extra={"fields": {"request_id": _request_id(request), "error": exc.message}},
        )
    return _error_response(exc)


def _error_response(exc: RecsvcError) -> JSONBytes:
    response = _error(exc.status_code, exc.code, exc.message)
    if isinstance(exc, UnauthorizedError):
        response.headers["www-authenticate"] = "Bearer"
    if isinstance(exc, OverloadedError):
        response.headers["retry-after"] = "1"
    return response


async def _unexpected_error(request: Request, exc: Exception) -> JSONBytes:
    """Anything else: still the JSON error shape (and logged with its traceback)."""
    logging.getLogger(LOGGER).error(
        "unexpected error",
        exc_info=exc,
        extra={"fields": {"request_id": _request_id(request)}},
    )
    return _error(500, "internal_error", "an unexpected error; it has been logged")


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def _message(error: Any) -> str:
    """A validation error's message; for invalid JSON, with what is wrong with it."""
    message = str(error.get("msg", ""))
    reason = (error.get("ctx") or {}).get("error")
    if error.get("type") == "json_invalid" and reason:
        return f"{message}: {reason}"
    return message


async def _validation_error(request: Request, exc: Exception) -> JSONBytes:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": list(e.get("loc", ())), "msg": _message(e), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return _error(422, "invalid_request", f"{where}: {first['msg']}", details)


async def _http_error(request: Request, exc: Exception) -> JSONBytes:
    assert isinstance(exc, StarletteHTTPException)
    code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(
        exc.status_code, "http_error"
    )
    response = _error(exc.status_code, code, str(exc.detail))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    if exc.status_code == 405:
        # Starlette names the methods of the first route on the path; Allow lists them all.
        response.headers["allow"] = ", ".join(_methods(request))
    return response


def _methods(request: Request) -> list[str]:
    """Every method some route answers on the request's path (each method tried in turn
    against the router, as it would route it)."""
    allowed = []
    for method in ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


DRAIN_BYTES = 16 << 20
"""Most bytes of a refused body read and dropped, so the client reads the 413."""
DRAIN_S = 5.0
"""Longest a refused body is read and dropped for, before the connection closes."""


class BodyLimitMiddleware:
    """Refuses a request body over ``max_bytes`` with 413 and the JSON error shape.

    A declared Content-Length is refused before anything is read; a chunked body is read
    up to the limit and refused as soon as it passes it, so no request can make a worker
    hold more than the limit. The 413 is sent at once; then the rest of the body is read
    and dropped (up to ``DRAIN_BYTES`` and ``DRAIN_S``) before the connection closes, so a
    client that writes its whole body before it reads (httpx, ``http.client``) reads the
    413 rather than a reset connection.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            # A client that waits for 100 Continue has not sent its body: nothing to drain.
            drain = headers.get(b"expect", b"").lower() != b"100-continue"
            await self._refuse(receive, send, drain and int(declared) <= DRAIN_BYTES)
            return
        if declared is not None:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._refuse(receive, send, bool(message.get("more_body", False)))
                return
            chunks.append(body)
            more = bool(message.get("more_body", False))
        await self.app(scope, fast_lanes.replaying(b"".join(chunks), receive), send)

    async def _refuse(self, receive: Receive, send: Send, drain: bool) -> None:
        response = _error(413, "payload_too_large", f"request body over {self.max_bytes:,} bytes")
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(response.body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": bytes(response.body), "more_body": drain})
        if not drain:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_discard(receive, DRAIN_BYTES), DRAIN_S)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _discard(receive: Receive, limit: int) -> None:
    """Reads and drops a request's body, up to ``limit`` bytes."""
    dropped = 0
    while dropped <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        dropped += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with ExitStack() as stack:
            url = stack.enter_context(
                redis_url_for(
                    settings.redis_url,
                    settings.data_dir,
                    allow_embedded=settings.allow_embedded_redis,
                )
            )
            client = storage.async_client(
                url,
                settings.redis_cluster,
                settings.redis_timeout_s,
                settings.redis_max_connections,
            )
            layout = settings.layout
            store = ModelStore(
                client,
                layout,
                settings.rules_cache_bytes,
                settings.list_cache_bytes,
                settings.refresh_interval_s,
            )
            candidate = ModelStore(
                client,
                layout,
                settings.rules_cache_bytes,
                settings.list_cache_bytes,
                settings.refresh_interval_s,
                pointer=layout.candidate,
            )
            app.state.store = store
            app.state.arms = arms = Arms(layout, store, candidate, settings.refresh_interval_s)
            watchers = {asyncio.create_task(arms.watch(), name="recsvc-arms")}
            if settings.refresh_interval_s > 0:
                watchers.add(asyncio.create_task(store.watch(), name="recsvc-watch"))
            try:
                yield
            finally:
                try:
                    # Bounded: shutting down must not wait on a Redis call that hangs.
                    for watcher in watchers:
                        watcher.cancel()
                    await asyncio.wait(watchers, timeout=settings.redis_timeout_s)
                    with contextlib.suppress(RecsvcError, asyncio.TimeoutError):
                        # The answers served since the last flush still count.
                        await asyncio.wait_for(arms.flush(), settings.redis_timeout_s)
                finally:
                    # Whatever the flush did, the pool's sockets are closed.
                    await storage.close(client)

    app = FastAPI(
        title="recsvc",
        version=__version__,
        summary="Cross-sell and upsell suggestions from purchase history.",
        lifespan=lifespan,
        default_response_class=JSONBytes,
        docs_url=None,  # served by recsvc.api.docs, with local assets
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics = Metrics()
    logger = configure_logging(settings.log_level)
    # Added first, so it runs inside observability: refused bodies are logged and counted.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # Outside the body limit: a request without its token is refused before any read.
    app.add_middleware(
        TokenGuard,
        prefixes={
            "/v1/admin/": Guarded(settings.admin_token, "admin", "RECSVC_ADMIN_TOKEN"),
            "/v1/events/": Guarded(settings.ingest_token, "order-event", "RECSVC_INGEST_TOKEN"),
        },
        refuse=_error_response,
    )
    app.add_middleware(
        ObservabilityMiddleware, metrics=metrics, logger=logger, log=settings.log_requests
    )
    app.add_exception_handler(RecsvcError, _recsvc_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.include_router(router)
    fast_lanes.install(app.router.routes)
    app.include_router(docs_router("recsvc"))
    app.include_router(widget_router())
    if settings.cors_origins or settings.cors_origin_regex:
        # Outermost: a browser's preflight is answered before anything else reads it.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_origin_regex=settings.cors_origin_regex,
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "x-request-id", "x-visitor-id"],
            max_age=600,
        )
    return app


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` with several workers: settings from the environment."""
    try:
        return create_app(load_settings())
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
