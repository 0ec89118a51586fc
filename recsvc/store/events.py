"""Live order events (``POST /v1/events/orders``): recorded once per order id on the
stream the next training reads, credited to the answers they came from, and put ahead of
the customer's history for the next answer. Owned by a ``ModelStore`` (``store.events``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from recsvc import model as lay
from recsvc.store.view import StoredHistory

if TYPE_CHECKING:
    from recsvc.store.reader import ModelStore
    from recsvc.store.view import ModelView


class OrderEvents:
    """Order events against the store's live version."""

    def __init__(self, store: ModelStore) -> None:
        self._store = store
        self._layout = store.layout
        self._storage = store.backend

    async def record_order(
        self,
        order_id: str,
        customer_id: str,
        item_ids: Sequence[str],
        day: int,
        event: Mapping[str, Any],
        keep_seconds: int,
        stream_max: int,
        credit: Sequence[Sequence[object]] = (),
    ) -> tuple[bool, int]:
        """Records one live order event, once per order id: on the stream for the next
        training, its ``credit`` to the answers it came from
        (``recsvc.experiments.attribution``), and its items ahead of the customer's history
        for the next answer. Returns whether it was new (False: a duplicate, ignored) and how many
        events were trimmed off the stream so far."""
        layout = self._layout
        view = await self._store.live_view()
        cap = max(int(view.meta.get("serving", {}).get("history_items", 50) or 50), 1)
        keys = [layout.event_order(order_id), layout.events, layout.event_histories]
        keys += [layout.events_added, layout.sales_total, layout.sales_day(lay.today())]
        argv: list[str | int | bytes] = [
            keep_seconds,
            stream_max,
            customer_id,
            day,
            cap,
            lay.encode_json(dict(event)),
            lay.encode_json([list(c) for c in credit]),  # [field, amount(, day only)]
            lay.SALES_DAYS_KEPT * 86400,
        ]
        reply = await self._storage.script(lay.ORDER_EVENT_SCRIPT, keys, [*argv, *item_ids])
        new, added, kept = reply
        return bool(new), max(int(added) - int(kept), 0)

    async def event_days(self, customer_ids: Sequence[str]) -> list[int]:
        """The latest day each customer bought on through live order events (-1: none)."""
        if not customer_ids:
            return []
        blobs = await self._storage.hmget_key(self._layout.event_histories, list(customer_ids))
        return [-1 if b is None else StoredHistory.decode(b).last_day for b in blobs]

    async def scan_event_customers(self, view: ModelView, count: int = 1000) -> Any:
        """Customers known only from live order events (no stored history in ``view``'s
        version), with their event history, in batches."""
        key = self._layout.event_histories
        cursor = 0
        while True:
            cursor, batch = await self._storage.hscan_key(key, cursor, count)
            pairs = batch
            ids = [c.decode() for c in pairs]
            stored = await self._storage.hmget(view.version, "customers", ids)
            yield [
                (c, StoredHistory.decode(h))
                for (c, h), old in zip(zip(ids, pairs.values(), strict=True), stored, strict=True)
                if old is None
            ]
            if cursor == 0:
                return
