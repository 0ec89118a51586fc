"""Reads the live model from Redis for the service.

Each request costs one Redis round trip (``FETCH_SCRIPT``: the version pointer and the
neighbour lists together; on a cluster, the buckets read beside it, ``recsvc.store.backend``).
What a version holds besides neighbour lists (item ids, popularity, metadata) is loaded
once when a new version is first seen and cached, which is how a newly published model
is served at once without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Sequence
from typing import Any

from recsvc import model as lay
from recsvc.errors import ModelIncompleteError, NoLiveModelError, RecsvcError, StoreUnavailableError
from recsvc.ranking import Ranking
from recsvc.store import backend as storage
from recsvc.store.admin import CatalogAdmin
from recsvc.store.events import OrderEvents
from recsvc.store.view import (
    DEFAULT_LIST_CACHE_BYTES,
    DEFAULT_MASK_CACHE_BYTES,
    AnswerWith,
    CustomerQuery,
    Fetched,
    ItemList,
    Lists,
    ModelView,
    StoredHistory,
    _VersionLists,
)


class ModelStore:
    def __init__(
        self,
        client: storage.AsyncClient,
        layout: lay.Layout,
        mask_cache_bytes: int = DEFAULT_MASK_CACHE_BYTES,
        list_cache_bytes: int = DEFAULT_LIST_CACHE_BYTES,
        refresh_interval_s: float = 0.0,
        pointer: str | None = None,
    ) -> None:
        self._layout = layout
        self._storage = storage.async_storage(client, layout)
        self._pointer = pointer or layout.live
        """The key naming the version this store serves: ``live``, or an A/B test's
        ``candidate`` (a second store, beside the live one, with caches of its own)."""
        self._mask_cache_bytes = mask_cache_bytes
        self._list_cache_bytes = list_cache_bytes
        self._lists: dict[str, _VersionLists] = {}
        self._believed: str | None = None
        """The version the last answer came from: a cart asks Redis only for the pointer,
        the epoch and the lists it does not keep for it."""
        self.refresh_interval_s = refresh_interval_s
        self._state: tuple[str, bytes | None] | None = None
        self._state_at = -math.inf
        """The live version and its stock epoch as ``watch`` last read them, and when."""
        self._views: dict[str, ModelView] = {}
        self._load_lock = asyncio.Lock()
        self.admin = CatalogAdmin(self)
        """Stock, catalog and erasure changes (``recsvc.store.admin``)."""
        self.events = OrderEvents(self)
        """Live order events (``recsvc.store.events``)."""

    @property
    def layout(self) -> lay.Layout:
        return self._layout

    @property
    def backend(self) -> storage.AsyncBackend:
        """Where the store's Redis calls go (one node or a cluster)."""
        return self._storage

    async def ping(self) -> None:
        await self._storage.ping()

    async def live_version(self) -> str | None:
        raw = await self._storage.get(self._pointer)
        return raw.decode() if isinstance(raw, bytes) else raw

    async def live_view(self) -> ModelView:
        for _attempt in range(2):
            version = await self.live_version()
            if version is None:
                raise NoLiveModelError("no model has been published yet")
            cached = self._views.get(version)
            # Metadata and the index do not change with stock; requests check the epoch.
            if cached is not None:
                return cached
            try:
                return await self._view(version)
            except _VersionGoneError:
                continue  # switched and collected between the two reads
        raise StoreUnavailableError("the live model changed twice during one request")

    async def verify(self, version: str, meta: dict[str, Any]) -> list[str]:
        """Every key of ``version``'s manifest that is missing or not the size written."""
        try:
            entries = lay.manifest_of(meta)
        except (ValueError, TypeError) as exc:
            return [f"unreadable manifest: {exc}"]
        found = await self._storage.inspect([self._layout.entry_key(version, e) for e in entries])
        return storage.manifest_problems(entries, found)

    async def report(self, html: bool) -> tuple[str, bytes | None]:
        """The live version and its evaluation report (JSON, or the HTML page), if stored."""
        version = await self.live_version()
        if version is None:
            raise NoLiveModelError("no model has been published yet")
        key = self._layout.report_html(version) if html else self._layout.report(version)
        blob = await self._storage.get(key)
        return version, blob if isinstance(blob, bytes) else None

    async def neighbours(self, item_ids: Sequence[str]) -> tuple[ModelView, list[ItemList | None]]:
        """The live version and each item's complements list (None if unknown)."""
        got = await self.lists(item_ids)
        return got.view, got.complements

    async def lists(self, item_ids: Sequence[str], alternatives: bool = False) -> Lists:
        """The live version, and each item's complements (and alternatives) lists.

        One round trip. Lists are decoded once per version and kept (bounded in bytes):
        when every list a cart needs is kept for the version last seen live, the round
        trip reads only the pointer and the stock epoch; otherwise it fetches the lists
        not kept, with the pointer, in one script (on a cluster, the buckets beside it). A
        version switch seen there costs one more round trip, once; an answer never mixes
        two versions.
        """
        watched = self._watched()
        if watched is not None:
            got = self._lists_kept(*watched, item_ids, alternatives)
            if got is not None:
                return got  # no Redis I/O at all: the watcher vouches for the version
        believed = watched[0] if watched is not None else self._believed
        if believed is not None and believed in self._views:
            got, believed = await self._lists_of_believed(believed, item_ids, alternatives)
            if got is not None:
                return got
        elif believed is None:
            believed = await self.live_version()
        for _attempt in range(3):
            if believed is None:
                raise NoLiveModelError("no model has been published yet")
            reply = await self._fetch(believed, item_ids, alternatives)
            if not reply.current:
                believed = reply.live  # switched: ask the version now live
                continue
            try:
                view = await self._view(believed, reply.epoch)
            except _VersionGoneError:
                believed = await self.live_version()
                continue  # two publishes raced past us; read the new pointer again
            if _gone(view, item_ids, reply.first):
                believed = await self.live_version()
                continue  # a cluster's buckets collected under us: read the pointer again
            kept = self._version_lists(believed)
            comp = kept.keep(kept.complements, item_ids, reply.first)
            alt = kept.keep(kept.alternatives, item_ids, reply.second) if alternatives else {}
            self._believed = believed
            return Lists(view, [comp[i] for i in item_ids], [alt.get(i) for i in item_ids])
        raise StoreUnavailableError("the live model changed twice during one request")

    async def _lists_of_believed(
        self, version: str, item_ids: Sequence[str], alternatives: bool
    ) -> tuple[Lists | None, str | None]:
        """``lists`` from the kept lists of ``version``, with one fetch-script call for the
        pointer, the epoch and the lists not kept (none, often); (None, the version live)
        when ``version`` is no longer live."""
        view = self._views[version]
        kept = self._version_lists(version)
        comp, alt, missing = self._split(view, kept, item_ids, alternatives)
        reply = await self._fetch(version, missing, alternatives)
        if not reply.current:
            return None, reply.live  # switched: the caller fetches from the new version
        if _gone(view, missing, reply.first):
            return None, await self.live_version()
        comp.update(kept.keep(kept.complements, missing, reply.first))
        if alternatives:
            alt.update(kept.keep(kept.alternatives, missing, reply.second))
        try:
            view = await self._view(version, reply.epoch)
        except _VersionGoneError:
            return None, await self.live_version()
        got = Lists(view, [comp.get(i) for i in item_ids], [alt.get(i) for i in item_ids])
        return got, version

    @staticmethod
    def _split(
        view: ModelView, kept: _VersionLists, item_ids: Sequence[str], alternatives: bool
    ) -> tuple[dict[str, ItemList | None], dict[str, ItemList | None], list[str]]:
        """The kept lists of ``item_ids`` (complements, alternatives), and the ids of the
        model whose lists are not kept. Ids the model does not know have no lists."""
        comp: dict[str, ItemList | None] = {}
        alt: dict[str, ItemList | None] = {}
        missing = []
        n = view.model_items
        for item in dict.fromkeys(item_ids):
            if view.index.get(item, n) >= n:
                continue  # unknown to the version, or added since: no lists
            c = kept.complements.get(item)
            a = kept.alternatives.get(item) if alternatives else None
            if c is None or (alternatives and a is None):
                missing.append(item)
            else:
                comp[item], alt[item] = c, a
        return comp, alt, missing

    # -- the watcher ----------------------------------------------------------------------

    async def watch(self) -> None:
        """Reads the live version and its stock epoch every ``refresh_interval_s``, so a
        cart whose lists are kept needs no Redis I/O at all. Run as a task by the app.

        A switch, rollback or stock change is served by every worker within two intervals
        (the watcher's state counts as fresh for two); if the watcher cannot read Redis
        for that long, requests go back to reading the pointer themselves.
        """
        while True:
            with contextlib.suppress(RecsvcError):
                await self.refresh()
            await asyncio.sleep(self.refresh_interval_s)

    async def refresh(self) -> None:
        """One read of the pointer and the epoch (the fetch script, with no ids; two when
        the version changed)."""
        believed = self._state[0] if self._state is not None else self._believed
        reply = await self._fetch(believed or "", [], False)
        if not reply.current and reply.live is not None:
            reply = await self._fetch(reply.live, [], False)
        if reply.live is None:
            self._state = None
            return
        if not reply.current:
            return  # switched twice between the two reads: the next interval catches up
        self._state = (reply.live, reply.epoch)
        self._state_at = time.monotonic()

    def _watched(self) -> tuple[str, bytes | None] | None:
        if self.refresh_interval_s <= 0 or self._state is None:
            return None
        if time.monotonic() - self._state_at > 2 * self.refresh_interval_s:
            return None  # the watcher is late (Redis slow or away): read per request
        return self._state

    def _lists_kept(
        self, version: str, epoch: bytes | None, item_ids: Sequence[str], alternatives: bool
    ) -> Lists | None:
        """``lists`` from what this worker holds for ``version`` at ``epoch``, or None."""
        view = self._views.get(version)
        kept = self._lists.get(version)
        if view is None or view.stock_epoch != epoch or kept is None:
            return None
        comp, alt, missing = self._split(view, kept, item_ids, alternatives)
        if missing:
            return None
        return Lists(view, [comp.get(i) for i in item_ids], [alt.get(i) for i in item_ids])

    def _version_lists(self, version: str) -> _VersionLists:
        kept = self._lists.get(version)
        if kept is None:
            # The newest two versions, as for views: the live one and the one before.
            others = [(v, k) for v, k in self._lists.items() if v != version][-1:]
            kept = _VersionLists(self._list_cache_bytes)
            self._lists = {**dict(others), version: kept}
        return kept

    async def customers(
        self,
        requests: Sequence[CustomerQuery | Sequence[str]],
        answer_with: AnswerWith | None = None,
    ) -> tuple[ModelView, list[Fetched]]:
        """Several lookups in one round trip: a stored customer's history, or a cart.

        Each request is a ``CustomerQuery`` or a sequence of item ids; each answer is the
        history found (None for an unknown customer, or for a cart) and neighbour lists.
        ``answer_with`` answers a stored customer from the history alone where it can (the
        trainer's picks): those customers' lists are not read (``Fetched.ranked``).
        """
        if not requests:
            return await self.live_view(), []
        customer_ids = [r.customer_id for r in requests if isinstance(r, CustomerQuery)]
        version = self._believed or await self.live_version()
        for _attempt in range(3):
            if version is None:
                raise NoLiveModelError("no model has been published yet")
            reply = await self._customers_script(version, customer_ids)
            if not reply.current:  # another version is live: ask that one
                version = reply.live
                continue
            epoch, stored, from_events = reply.epoch, reply.first, reply.second
            try:
                view = await self._view(version, epoch)
            except _VersionGoneError:
                version = await self.live_version()
                continue
            found = iter(zip(stored, from_events, strict=True))
            cap = max(int(view.meta.get("serving", {}).get("history_items", 50) or 50), 1)
            kept = self._version_lists(view.version)
            histories: list[StoredHistory | None] = []
            answered: list[Ranking | None] = []
            wanted: dict[str, None] = {}
            for req in requests:
                ranked = None
                if isinstance(req, CustomerQuery):
                    blob, recent = next(found)
                    history = None if blob is None else StoredHistory.decode(blob)
                    if recent is not None:
                        history = StoredHistory.decode(recent).before(history, cap)
                    histories.append(history)
                    if history is not None and answer_with is not None:
                        ranked = answer_with(view, history)
                    ids: Sequence[str] = (
                        [] if history is None or ranked is not None else history.item_ids
                    )
                else:
                    histories.append(None)
                    ids = req
                answered.append(ranked)
                n = view.model_items
                wanted.update(dict.fromkeys(i for i in ids if view.index.get(i, n) < n))
            # The histories came without lists: what this worker keeps decoded is used,
            # the rest read from the same version in one more round trip.
            got: dict[str, ItemList | None] = {}
            missing = []
            for item in wanted:
                decoded = kept.complements.get(item)
                if decoded is None:
                    missing.append(item)
                else:
                    got[item] = decoded
            if missing:
                blobs = await self._storage.hmget(view.version, "neighbours", missing)
                if any(b is None for b in blobs):
                    version = await self.live_version()
                    continue  # the version was collected meanwhile: read the pointer again
                got.update(kept.keep(kept.complements, missing, blobs))
            self._believed = view.version
            out = []
            for req, history, ranked in zip(requests, histories, answered, strict=True):
                if ranked is not None:
                    out.append(Fetched(history, [], ranked))
                    continue
                ids = history.item_ids if history is not None else []
                if not isinstance(req, CustomerQuery):
                    ids = req
                out.append(Fetched(history, [got.get(i) for i in ids]))
            return view, out
        raise StoreUnavailableError("the live model changed twice during one request")

    async def _customers_script(self, version: str, customer_ids: Sequence[str]) -> storage.Reply:
        reply = await self._storage.customers(self._pointer, version, customer_ids)
        self._saw_test(reply.test)
        return reply

    async def scan_customers(self, view: ModelView, count: int = 1000) -> Any:
        """Every stored customer of ``view``'s version, as (id, history) pairs, in batches."""
        async for pairs in self._storage.hscan(view.version, "customers", count):
            yield [(c.decode(), StoredHistory.decode(h)) for c, h in pairs.items()]

    async def _fetch(
        self, version: str, item_ids: Sequence[str], alternatives: bool
    ) -> storage.Reply:
        reply = await self._storage.fetch(self._pointer, version, item_ids, alternatives)
        self._saw_test(reply.test)
        return reply

    def _saw_test(self, raw: bytes | None) -> None:
        self.test_seen = (time.monotonic(), raw)

    test_seen: tuple[float, bytes | None] = (-math.inf, None)
    """When this store's last script call read the A/B test in force, and what it read
    (``recsvc.experiments.arms`` learns the test from it without a read of its own)."""

    async def _view(self, version: str, epoch: bytes | None = None) -> ModelView:
        view = self._views.get(version)
        if view is not None and view.stock_epoch == epoch:
            return view
        async with self._load_lock:
            view = self._views.get(version)
            if view is not None and view.stock_epoch == epoch:
                return view
            view = await self._load(version)
            # Keep the newest two versions: the live one and the one requests may still be
            # on. A reload of the same version (a stock change) replaces its old view; it
            # once kept the stale one, and every later request reloaded the whole version.
            others = [(v, w) for v, w in self._views.items() if v != version][:1]
            self._views = {version: view, **dict(others)}
            return view

    async def _load(self, version: str) -> ModelView:
        # No MULTI: Redis at maxmemory refuses a transaction even of reads. The epoch
        # is read before the stock, so a change landing between them makes the next
        # request reload (a newer epoch), never keeps a stale view.
        layout = self._layout

        def reads(pipe: Any) -> None:
            pipe.get(layout.stock_epoch(version))
            pipe.get(layout.meta(version))
            pipe.get(layout.items(version))
            pipe.get(layout.popular(version))
            pipe.get(layout.catalog(version))
            pipe.hgetall(layout.stock(version))
            pipe.hgetall(layout.catalog_items)
            pipe.smembers(layout.catalog_deleted)

        result = await self._storage.batch(reads)
        epoch, meta, items, popular, catalog, stock, added, deleted = result
        if meta is None:
            raise _VersionGoneError(version)  # collected after a newer switch: re-read
        try:
            decoded = dict(lay.decode_json(meta))
        except ValueError as exc:
            raise ModelIncompleteError(f"model {version} has unreadable metadata: {exc}") from exc
        problems = await self.verify(version, decoded)
        if (problems or items is None or popular is None) and await self.live_version() != version:
            raise _VersionGoneError(version)  # being collected after two switches: re-read
        if problems or items is None or popular is None:
            problems = problems or ["items or popular is missing"]
            raise ModelIncompleteError(
                f"model {version} is incomplete: {'; '.join(problems)}; roll back "
                "(python -m training rollback) or retrain"
            )
        try:
            return ModelView.from_blobs(
                version,
                meta,
                items,
                popular,
                catalog,
                stock,
                epoch,
                self._mask_cache_bytes,
                added=added,
                deleted=deleted,
            )
        except ValueError as exc:
            raise ModelIncompleteError(f"model {version} is unreadable: {exc}") from exc


class _VersionGoneError(Exception):
    pass


def _gone(view: ModelView, item_ids: Sequence[str], blobs: Sequence[bytes | None]) -> bool:
    """Whether an item the version was trained on came without its list: every such item
    has one, so its version was collected while the lists were read (on a cluster, where
    the buckets are read beside the pointer's script)."""
    n = view.model_items
    return any(b is None and view.index.get(i, n) < n for i, b in zip(item_ids, blobs, strict=True))
