"""What operators change in the live model between trainings: stock and prices, catalog
additions and deletions, erasure of customers; every catalog change and erasure audited.

Owned by a ``ModelStore`` (``store.admin``), whose worker serves a change from its next
request; the other workers within two refresh intervals (the stock epoch)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from recsvc import model as lay

if TYPE_CHECKING:
    from recsvc.store.reader import ModelStore
    from recsvc.store.view import ModelView


class CatalogAdmin:
    """The admin API's writes, against the store's live version (and an A/B test's candidate)."""

    def __init__(self, store: ModelStore) -> None:
        self._store = store
        self._layout = store.layout
        self._storage = store.backend

    async def set_stock(self, changes: Mapping[str, Mapping[str, Any]]) -> tuple[str, list[str]]:
        """Marks items (un)available or reprices them in the live version; returns that
        version and the ids it does not know (left unchanged)."""
        view = await self._store.live_view()
        unknown = [i for i in changes if i not in view.index]
        known = {i: c for i, c in changes.items() if i in view.index}
        if not known:
            return view.version, unknown
        # An A/B test's candidate is served too: the change applies to it as well (an
        # item it does not know keeps an entry it never reads).
        for version in await self._served_versions(view.version):
            stock_key = self._layout.stock(version)
            current = await self._storage.hmget_key(stock_key, list(known))
            merged: dict[str | bytes | bytearray | memoryview | int | float, bytes] = {}
            for (item, change), old in zip(known.items(), current, strict=True):
                entry = dict(lay.decode_json(old)) if isinstance(old, bytes) else {}
                entry.update({k: v for k, v in change.items() if v is not None})
                merged[item] = lay.encode_json(entry)
            epoch_key = self._layout.stock_epoch(version)

            def write(
                pipe: Any, key: str = stock_key, epoch: str = epoch_key, fields: Any = merged
            ) -> None:
                pipe.hset(key, mapping=fields)
                pipe.incr(epoch)

            await self._storage.batch(write, atomic=True)
        if self._store.refresh_interval_s > 0:
            await self._store.refresh()  # this worker serves the change from its next request
        return view.version, unknown

    async def _served_versions(self, live: str) -> list[str]:
        """``live`` and, while an A/B test runs, its candidate: the versions answers come
        from, which every stock and catalog change reaches."""
        raw = await self._storage.get(self._layout.candidate)
        candidate = None if raw is None else raw.decode()
        return [live] if candidate is None or candidate == live else [live, candidate]

    async def put_items(
        self, items: Mapping[str, Mapping[str, Any]], actor: str
    ) -> tuple[str, list[str]]:
        """Adds items to the catalog, or updates their facts, between trainings; returns the
        live version and the ids it was not trained on (served as new in their category)."""
        view = await self._store.live_view()
        now = time.time()
        layout = self._layout
        current = await self._storage.hmget_key(layout.catalog_items, list(items))
        merged: dict[str | bytes | bytearray | memoryview | int | float, bytes] = {}
        for (item, change), old in zip(items.items(), current, strict=True):
            entry = dict(lay.decode_json(old)) if isinstance(old, bytes) else {}
            entry.setdefault("added_at", now)
            entry.update({k: v for k, v in change.items() if v is not None})
            merged[item] = lay.encode_json(entry)

        def write(pipe: Any) -> None:
            pipe.hset(layout.catalog_items, mapping=merged)
            pipe.srem(layout.catalog_deleted, *items)

        await self._catalog_change(view, actor, "put_item", list(items), write)
        new = [i for i in items if view.index.get(i, view.model_items) >= view.model_items]
        return view.version, new

    async def delete_items(self, item_ids: Sequence[str], actor: str) -> str:
        """Items never suggested again, by this version or any later one, until put again."""
        view = await self._store.live_view()
        layout = self._layout

        def write(pipe: Any) -> None:
            pipe.sadd(layout.catalog_deleted, *item_ids)
            pipe.hdel(layout.catalog_items, *item_ids)

        await self._catalog_change(view, actor, "delete_item", list(item_ids), write)
        return view.version

    async def _catalog_change(
        self, view: ModelView, actor: str, action: str, ids: list[str], write: Any
    ) -> None:
        """A catalog change in one transaction with its audit entry and a bump of the live
        version's stock epoch (every worker reloads its view within two intervals)."""
        served = await self._served_versions(view.version)

        def change(pipe: Any) -> None:
            write(pipe)
            self._audit(pipe, actor, action, ids)
            for version in served:
                pipe.incr(self._layout.stock_epoch(version))

        await self._storage.batch(change, atomic=True)
        await self._changed()

    async def erase_customers(self, customer_ids: Sequence[str], actor: str) -> list[str]:
        """Erases the customers' stored histories from the live, previous and candidate
        versions (the only ones kept) and what live order events added to them, and keeps
        their ids so that no later publish stores them again. Returns the versions that
        held any of them. Audited."""
        layout = self._layout
        versions = {
            v.decode() if isinstance(v, bytes) else str(v)
            for v in await self._storage.mget([layout.live, layout.previous, layout.candidate])
            if v is not None
        }
        held = []
        for version in sorted(versions):
            present = await self._storage.hmget(version, "customers", list(customer_ids))
            found = [c for c, h in zip(customer_ids, present, strict=True) if h is not None]
            if found:
                # Overwritten, not deleted: the hash keeps its size (its manifest).
                erased = dict.fromkeys(found, lay.ERASED_HISTORY)
                await self._storage.hset(version, "customers", erased)
                held.append(version)

        def erase(pipe: Any) -> None:
            pipe.hdel(layout.event_histories, *customer_ids)
            pipe.sadd(layout.erased, *customer_ids)
            self._audit(pipe, actor, "erase_customer", list(customer_ids), versions=held)

        await self._storage.batch(erase, atomic=True)
        return held

    async def audit_log(self, count: int) -> list[dict[str, Any]]:
        """The latest ``count`` audit entries, newest first."""
        entries = await self._storage.xrevrange(self._layout.audit, count)
        out = []
        for entry_id, fields in entries:
            record = lay.decode_json(fields[b"entry"])
            if isinstance(record.get("at"), int | float):  # entries written before ISO times
                record["at"] = iso_time(float(record["at"]))
            out.append({"id": entry_id.decode(), **record})
        return out

    def _audit(self, pipe: Any, actor: str, action: str, ids: list[str], **extra: Any) -> None:
        record = {
            "at": iso_time(time.time()),
            "actor": actor,
            "action": action,
            "ids": ids,
            **extra,
        }
        pipe.xadd(
            self._layout.audit,
            {"entry": lay.encode_json(record)},
            maxlen=lay.AUDIT_MAX_ENTRIES,
            approximate=True,
        )

    async def _changed(self) -> None:
        if self._store.refresh_interval_s > 0:
            await self._store.refresh()  # this worker serves the change from its next request


def iso_time(unix_seconds: float) -> str:
    """An audit entry's time as people and log tools read it: ISO 8601 in UTC, to the
    millisecond (``2026-12-04T21:19:41.123Z``)."""
    at = datetime.fromtimestamp(unix_seconds, UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
