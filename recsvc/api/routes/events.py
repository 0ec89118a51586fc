"""Live order events (``RECSVC_INGEST_TOKEN``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from recsvc.api.observability import Metrics
from recsvc.api.routes.deps import JSONBytes, errors_doc, require_token, settings_of, store_of
from recsvc.api.schemas import OrderEvent, OrderEventResponse
from recsvc.api.strict_json import StrictJSONRoute
from recsvc.experiments import attribution
from recsvc.experiments.attribution import Line

router = APIRouter(route_class=StrictJSONRoute)


_INGEST = HTTPBearer(auto_error=False, description="RECSVC_INGEST_TOKEN")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@router.post(
    "/v1/events/orders",
    status_code=202,
    response_class=JSONBytes,
    responses={202: {"model": OrderEventResponse}, **errors_doc(400, 401, 403, 413, 422, 503)},
    summary="A live order: the customer's next answer knows it at once (no retrain), and "
    "the next training folds it in; a repeated order id is ignored",
)
async def order_event(
    body: OrderEvent,
    request: Request,
    _token: Annotated[HTTPAuthorizationCredentials | None, Security(_INGEST)] = None,
) -> JSONBytes:
    settings = settings_of(request)
    require_token(request, settings.ingest_token, "order-event", "RECSVC_INGEST_TOKEN")
    when = body.purchased_at if body.purchased_at.tzinfo else body.purchased_at.replace(tzinfo=UTC)
    event = body.model_dump(mode="json", exclude_none=True)
    event["purchased_at"] = when.isoformat()
    lines = [
        Line(line.quantity, line.price, line.recommendation_id, line.slot, line.position)
        for line in body.items
    ]
    credit = attribution.credit(lines, body.recommendation_id, body.slot)
    new, trimmed = await store_of(request).events.record_order(
        body.order_id,
        body.customer_id,
        [line.item_id for line in body.items],
        (when - _EPOCH).days,
        event,
        keep_seconds=int(settings.event_dedupe_days * 86400),
        stream_max=settings.events_max,
        credit=credit.script_argument(),
    )
    metrics: Metrics = request.app.state.metrics
    metrics.events.labels("accepted" if new else "duplicate").inc()
    if new:
        metrics.events_trimmed.set(trimmed)
    return JSONBytes(
        {
            "order_id": body.order_id,
            "duplicate": not new,
            "attributed_lines": credit.lines if new else 0,
            "unknown_recommendations": credit.unknown,
        },
        status_code=202,
    )
