"""Prometheus metrics, JSON logs, and request ids, as one pure ASGI middleware.

A pure ASGI middleware rather than ``BaseHTTPMiddleware``: the latter runs each request
through an extra task and stream, which costs more than the cart endpoint's ranking.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recsvc.config import LOGGER
from recsvc.experiments.experiment import ARMS

REQUEST_ID_HEADER = "x-request-id"
_VALID_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


CUSTOMER_PATHS = ("picks", "events", "online")


class Metrics:
    """One registry per app, so several apps (tests) never share counters."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.latency = Histogram(
            "recsvc_request_duration_seconds",
            "Time to answer a request, by route template.",
            ["route", "method"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=r,
        )
        self.responses = Counter(
            "recsvc_responses_total",
            "Responses by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.fallbacks = Counter(
            "recsvc_fallback_answers_total",
            "Answers made of popular items only: nothing in the input was known.",
            registry=r,
        )
        self.redis_errors = Counter(
            "recsvc_redis_errors_total",
            "Requests that failed because Redis did not answer.",
            registry=r,
        )
        self.overloaded = Counter(
            "recsvc_redis_pool_timeouts_total",
            "Requests refused because no pooled Redis connection freed up in time "
            "(overload, not an outage: raise RECSVC_REDIS_MAX_CONNECTIONS or add workers).",
            registry=r,
        )
        self.events = Counter(
            "recsvc_events_total",
            "Live order events by outcome: accepted, or a duplicate order id (ignored).",
            ["result"],
            registry=r,
        )
        self.events_trimmed = Gauge(
            "recsvc_events_trimmed",
            "Order events trimmed off the capped stream before a training folded them in "
            "(as of the last event this worker took; raise RECSVC_EVENTS_MAX or train more "
            "often).",
            registry=r,
        )
        self.answers = Counter(
            "recsvc_answers_total",
            "Answers served by this worker, by A/B arm (live: no test applies).",
            ["arm"],
            registry=r,
        )
        self.answers_by_arm = {arm: self.answers.labels(arm) for arm in ARMS}
        self.customer_answers = Counter(
            "recsvc_customer_answers_total",
            "Stored customers' answers by how they were made: picks (the trainer's ranked "
            "suggestions, filtered), events (ranked online: live order events changed the "
            "history since the training) or online (the request needs what the picks "
            "cannot tell, or the version has none).",
            ["path"],
            registry=r,
        )
        self.customer_paths = {p: self.customer_answers.labels(p) for p in CUSTOMER_PATHS}
        """Label children resolved once: ``labels()`` takes a lock on every call."""
        self.sales = SalesCollector()
        r.register(self.sales)
        self.model_info = Gauge(
            "recsvc_model_info", "The live model version (value 1).", ["version"], registry=r
        )
        self.model_age = Gauge(
            "recsvc_model_age_seconds", "Seconds since the live model was trained.", registry=r
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One request's latency and status; label children are looked up once."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.latency.labels(route, method),
                self.responses.labels(route, str(status)),
            )
            self._children[key] = children
        children[0].observe(seconds)
        children[1].inc()

    def observe_model(self, version: str, trained_at: str | None) -> None:
        self.model_info.clear()
        self.model_info.labels(version=version).set(1)
        if trained_at:
            age = datetime.now(UTC) - datetime.fromisoformat(trained_at)
            self.model_age.set(age.total_seconds())


class SalesCollector(Collector):
    """What recsvc sold, from Redis's sales counts (every worker and replica adds to the
    same counts, so every one reports the same totals: aggregate them with ``max``, not
    ``sum``). Set at each scrape, for the versions still kept."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, float, float, float]] = []
        """(version, arm, slot, orders, revenue, lines)."""
        self.answers: list[tuple[str, str, float]] = []
        """(version, arm, answers)."""

    def collect(self) -> list[Metric]:
        labels = ["version", "arm", "slot"]
        orders = CounterMetricFamily(
            "recsvc_attributed_orders",
            "Orders credited to an answer (order events naming its recommendation_id), by "
            "version, A/B arm and slot; all replicas report the same totals.",
            labels=labels,
        )
        revenue = CounterMetricFamily(
            "recsvc_attributed_revenue",
            "Revenue (quantity x unit price) of the order lines credited to an answer.",
            labels=labels,
        )
        lines = CounterMetricFamily(
            "recsvc_attributed_lines", "Order lines credited to an answer.", labels=labels
        )
        answers = CounterMetricFamily(
            "recsvc_arm_answers",
            "Answers served by every replica, by version and A/B arm (the denominator of "
            "orders and revenue per answer).",
            labels=["version", "arm"],
        )
        for version, arm, slot, o, rev, n in self.rows:
            orders.add_metric([version, arm, slot], o)
            revenue.add_metric([version, arm, slot], rev)
            lines.add_metric([version, arm, slot], n)
        for version, arm, n in self.answers:
            answers.add_metric([version, arm], n)
        return [orders, revenue, lines, answers]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # orjson: the standard encoder measured as most of a request log line's cost.
        return orjson.dumps(entry, default=str).decode()


def _direct_writer(logger: logging.Logger) -> Any:
    """The request line written straight to the handler's stream, the same JSON as the
    formatter makes, when the logger is as ``configure_logging`` left it (one JSON stream
    handler, no filters): ``Logger.info`` measured as 12 microseconds a request, this 2.
    Any other set-up (a test's handler, a filter) goes through ``logging``."""
    handlers = list(logger.handlers)  # a copy: compared with the live list on each write
    if len(handlers) != 1 or logger.filters:
        return None
    handler = handlers[0]
    if type(handler) is not logging.StreamHandler or not isinstance(
        handler.formatter, JsonFormatter
    ):
        return None
    stream = handler.stream
    name = logger.name

    def write(fields: dict[str, Any]) -> None:
        if logger.handlers != handlers:  # reconfigured since: take the general path
            logger.info("request", extra={"fields": fields})
            return
        line = {"time": time.time(), "level": "info", "logger": name, "message": "request"}
        line.update(fields)
        stream.write(orjson.dumps(line).decode() + "\n")

    return write


def configure_logging(level: str) -> logging.Logger:
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


class ObservabilityMiddleware:
    """Times every HTTP request, counts its status, logs it, and tags it with an id.

    The id is the caller's ``X-Request-ID`` when it looks like one, else a new one; it is
    returned in the same header and written in the log line.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, logger: logging.Logger, log: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.logger = logger
        self.log = log
        self.fast_log = _direct_writer(logger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _VALID_ID.match(candidate):
                    request_id = candidate
                break
        request_id = request_id or secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            known = method if method in _METHODS else "OTHER"  # bounded label values
            self.metrics.observe_request(template, known, status, elapsed)
            if self.log and self.logger.isEnabledFor(logging.INFO):
                fields = {
                    "request_id": request_id,
                    "method": method,
                    "path": scope.get("path", ""),
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                }
                if self.fast_log is not None:
                    self.fast_log(fields)
                else:
                    self.logger.info("request", extra={"fields": fields})
