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
import hashlib
import math
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, RedisError

from recsvc import model as lay
from recsvc.errors import (
    ModelIncompleteError,
    NoLiveModelError,
    OverloadedError,
    RecsvcError,
    StoreFullError,
    StoreUnavailableError,
)
from recsvc.ranking.cart import UpsellEntry
from recsvc.ranking.rules import CatalogArrays, MerchRules, allowed_mask
from recsvc.store import backend as storage
from recsvc.store.cache import ByteBoundedCache

DEFAULT_MASK_CACHE_BYTES = 16 << 20
_ENTRY_OVERHEAD = 200
"""Bytes of a cached mask beyond its array: key, tuple, array header."""


@dataclass(frozen=True)
class ModelView:
    """Everything about one version that is not fetched per request."""

    version: str
    meta: dict[str, Any]
    item_ids: tuple[str, ...]
    index: dict[str, int]
    popular: lay.IntArray
    popular_counts: dict[int, int]
    catalog: tuple[dict[str, Any], ...]
    """Per item: title, category, price, available and extras, stock changes applied."""
    arrays: CatalogArrays
    margin: npt.NDArray[np.float64] | None
    """Per item, when the catalog gives margins."""
    stock_epoch: bytes | None
    model_items: int = 0
    """How many of ``item_ids`` the version was trained on (they lead); the rest were added
    since, by the admin API, and have no lists."""
    fresh: tuple[int, ...] = ()
    """Items added by the admin API that this version was not trained on (indices past the
    model's own items), newest first: placed among their category's suggestions."""
    masks: ByteBoundedCache[bytes, npt.NDArray[np.bool_]] = field(
        default_factory=lambda: ByteBoundedCache(DEFAULT_MASK_CACHE_BYTES)
    )
    """Allowed-item masks by rules, computed once per view (a stock change makes a new
    one), keyed by a digest of the rules and bounded in bytes: rules come from requests."""
    upsell_lists: ByteBoundedCache[tuple[int, float, float], list[UpsellEntry]] = field(
        default_factory=lambda: ByteBoundedCache(DEFAULT_MASK_CACHE_BYTES)
    )
    """Per cart item and price band, its alternatives that qualify for the upsell slot
    (``ranking.band_alternatives``): they depend on this view's prices, so kept per view,
    bounded in bytes like the masks."""
    default_rule_parts: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per suggested item, its catalog facts as rendered (bounded by the catalog)."""
    """The ranking rules of a request without rules of its own, made once per view."""

    @classmethod
    def from_blobs(
        cls,
        version: str,
        meta: bytes,
        items: bytes,
        popular: bytes,
        catalog: bytes | None = None,
        stock: dict[bytes, bytes] | None = None,
        stock_epoch: bytes | None = None,
        mask_cache_bytes: int = DEFAULT_MASK_CACHE_BYTES,
        added: dict[bytes, bytes] | None = None,
        deleted: Collection[bytes] = (),
    ) -> ModelView:
        decoded_meta = lay.decode_json(meta)
        lay.check_format(decoded_meta)
        model_ids: list[str] = list(lay.decode_json(items))
        popular_idx, _, popular_counts = lay.decode_lists(popular)
        index = {item: i for i, item in enumerate(model_ids)}
        facts: list[dict[str, Any]] = (
            [dict(f) for f in lay.decode_json(catalog)]
            if catalog
            else [{"title": "", "available": True} for _ in model_ids]
        )
        if len(facts) != len(model_ids):
            raise ValueError("catalog and items differ in length")
        # Catalog changes between trainings: facts of known items overridden, new items
        # appended past the model's own (no lists of their own: placed by category).
        fresh: list[tuple[float, int]] = []
        for raw_item, raw_facts in sorted((added or {}).items()):
            item, entry = raw_item.decode(), dict(lay.decode_json(raw_facts))
            at = index.get(item)
            if at is None:
                at = index[item] = len(model_ids)
                model_ids.append(item)
                facts.append({"title": "", "available": True})
                fresh.append((-float(entry.get("added_at", 0.0)), at))
            facts[at].update({k: v for k, v in entry.items() if k != "added_at"})
        for raw_item, raw_change in (stock or {}).items():
            at = index.get(raw_item.decode())
            if at is not None:
                facts[at].update(lay.decode_json(raw_change))
        for raw_item in deleted:
            at = index.get(raw_item.decode())
            if at is not None:
                facts[at]["available"] = False  # never suggested
        gone = {index[r.decode()] for r in deleted if r.decode() in index}
        model_items = len(facts) - len(fresh)
        item_ids = tuple(model_ids)
        categories = sorted({str(f["category"]) for f in facts if f.get("category")})
        code = {c: n for n, c in enumerate(categories)}
        arrays = CatalogArrays(
            price=np.array([float(f.get("price", np.nan)) for f in facts], dtype=np.float64),
            available=np.array([bool(f.get("available", True)) for f in facts], dtype=bool),
            category=np.array([code.get(str(f.get("category")), -1) for f in facts], np.int64),
            categories=categories,
        )
        margin = None
        if any("margin" in f for f in facts):
            margin = np.array([float(f.get("margin", np.nan)) for f in facts], dtype=np.float64)
        return cls(
            version=version,
            meta=decoded_meta,
            item_ids=item_ids,
            index=index,
            popular=popular_idx,
            popular_counts=dict(zip(popular_idx.tolist(), popular_counts.tolist(), strict=True)),
            catalog=tuple(facts),
            arrays=arrays,
            margin=margin,
            stock_epoch=stock_epoch,
            model_items=model_items,
            fresh=tuple(at for _, at in sorted(fresh) if at not in gone),
            masks=ByteBoundedCache(mask_cache_bytes),
            upsell_lists=ByteBoundedCache(mask_cache_bytes),
        )

    def allowed(self, rules: MerchRules) -> npt.NDArray[np.bool_]:
        key = hashlib.blake2b(rules.model_dump_json().encode(), digest_size=16).digest()
        mask = self.masks.get(key)
        if mask is None:
            mask = allowed_mask(self.arrays, self.index, rules)
            self.masks.put(key, mask, mask.nbytes + _ENTRY_OVERHEAD)
        return mask


@dataclass(frozen=True, slots=True)
class ItemList:
    """One item's decoded neighbour list: indices, weights, evidence counts, best first."""

    indices: lay.IntArray
    scores: npt.NDArray[np.float64]
    """Widened from the packed float32 once, when decoded, not on every request."""
    counts: lay.IntArray
    positive: ItemList | None = None
    """The entries with a positive weight, as views into these arrays (lists are best
    first, so they lead): a history ranks only these, half of an EASE list. Made once,
    when decoded; None on the positive part itself."""

    @classmethod
    def decode(cls, blob: bytes) -> ItemList:
        try:
            indices, scores, counts = lay.decode_lists(blob)
        except ValueError as exc:
            raise StoreUnavailableError(f"corrupt neighbour list: {exc}") from exc
        wide = scores.astype(np.float64)
        positive = wide > 0
        n = int(positive.sum())
        if not positive[:n].all():  # not best first: put the positive ones first
            order = np.concatenate([np.flatnonzero(positive), np.flatnonzero(~positive)])
            indices, wide, counts = indices[order], wide[order], counts[order]
        return cls(indices, wide, counts, cls(indices[:n], wide[:n], counts[:n]))

    @property
    def nbytes(self) -> int:
        return int(self.indices.nbytes + self.scores.nbytes + self.counts.nbytes) + _LIST_OVERHEAD


_LIST_OVERHEAD = 400
"""Bytes of a cached list beyond its arrays: three array headers, the key, the entry."""
DEFAULT_LIST_CACHE_BYTES = 64 << 20


class _VersionLists:
    """Decoded lists of one version, by item id, bounded in bytes (popular items stay)."""

    def __init__(self, max_bytes: int) -> None:
        half = max_bytes // 2
        self.complements: ByteBoundedCache[str, ItemList] = ByteBoundedCache(half)
        self.alternatives: ByteBoundedCache[str, ItemList] = ByteBoundedCache(half)

    def keep(
        self, kind: ByteBoundedCache[str, ItemList], ids: Sequence[str], blobs: Sequence[Any]
    ) -> dict[str, ItemList | None]:
        out: dict[str, ItemList | None] = {}
        for item, blob in zip(ids, blobs, strict=True):
            if blob is None:
                out[item] = None
                continue
            decoded = kind.get(item)
            if decoded is None:
                decoded = ItemList.decode(blob)
                kind.put(item, decoded, decoded.nbytes)
            out[item] = decoded
        return out


@dataclass(frozen=True)
class Lists:
    """A fetch: the view it came from, and per requested item its decoded lists."""

    view: ModelView
    complements: list[ItemList | None]
    alternatives: list[ItemList | None]


@dataclass(frozen=True)
class CustomerQuery:
    customer_id: str


@dataclass(frozen=True)
class StoredHistory:
    item_ids: list[str]
    """Newest first."""
    days: list[int]
    """Day of each item's latest purchase, since 1970-01-01 (-1: undated)."""
    counts: list[int] = field(default_factory=list)
    """Orders each item was bought in (empty: once each)."""

    @classmethod
    def decode(cls, blob: bytes) -> StoredHistory:
        try:
            return cls(*lay.decode_history(blob))
        except (ValueError, TypeError, IndexError) as exc:
            raise StoreUnavailableError(f"corrupt stored history: {exc}") from exc

    @property
    def last_day(self) -> int:
        return max(self.days, default=-1)

    def count_list(self) -> list[int]:
        return self.counts if self.counts else [1] * len(self.item_ids)

    def before(self, older: StoredHistory | None, cap: int) -> StoredHistory:
        """These (live order events') items ahead of ``older`` (a stored history), each
        item once, at most ``cap``: the history the next training would store. An item in
        both adds the older history's orders to the new ones."""
        mine = self.count_list()
        if older is None:
            return StoredHistory(self.item_ids[:cap], self.days[:cap], mine[:cap])
        earlier = dict(zip(older.item_ids, older.count_list(), strict=True))
        seen = set(self.item_ids)
        items, days = list(self.item_ids), list(self.days)
        counts = [n + earlier.get(i, 0) for i, n in zip(items, mine, strict=True)]
        for item, day, n in zip(older.item_ids, older.days, older.count_list(), strict=True):
            if item not in seen and len(items) < cap:
                seen.add(item)
                items.append(item)
                days.append(day)
                counts.append(n)
        return StoredHistory(items[:cap], days[:cap], counts[:cap])


@dataclass(frozen=True)
class Fetched:
    history: StoredHistory | None
    lists: list[ItemList | None]


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
        self._client = client
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

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except RedisError as exc:
            raise unavailable(exc) from exc

    async def live_version(self) -> str | None:
        try:
            raw = await self._client.get(self._pointer)
        except RedisError as exc:
            raise unavailable(exc) from exc
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

    async def health(self) -> Health:
        """What readiness reports: the live version checked key by key against its
        manifest (no cache: an evicting Redis may have taken a key since it was loaded),
        and Redis's memory policy and headroom."""
        problems: list[str] = []
        warnings: list[str] = []
        try:
            masters = await self._storage.memory()
        except RedisError as exc:
            raise unavailable(exc) from exc
        for info in masters:
            policy = str(info.get("maxmemory_policy", ""))
            if policy.startswith("allkeys-"):
                warnings.append(
                    f"maxmemory-policy is {policy}: Redis may evict keys of the live model; "
                    "use noeviction"
                )
            limit, used = int(info.get("maxmemory", 0) or 0), int(info.get("used_memory", 0))
            if limit and used >= limit and policy == "noeviction":
                warnings.append(
                    f"Redis is at maxmemory ({used:,} of {limit:,} bytes): it refuses writes "
                    "(stock changes, the next publish)"
                )
        warnings = list(dict.fromkeys(warnings))
        view = await self.live_view()
        problems = await self.verify(view.version, view.meta)
        if problems:
            raise ModelIncompleteError(
                f"live model {view.version} is incomplete: {'; '.join(problems)}; roll back "
                "(python -m training rollback) or retrain"
            )
        return Health(view, warnings)

    async def verify(self, version: str, meta: dict[str, Any]) -> list[str]:
        """Every key of ``version``'s manifest that is missing or not the size written."""
        try:
            entries = lay.manifest_of(meta)
        except (ValueError, TypeError) as exc:
            return [f"unreadable manifest: {exc}"]
        try:
            found = await self._storage.inspect(
                [self._layout.entry_key(version, e) for e in entries]
            )
        except RedisError as exc:
            raise unavailable(exc) from exc
        return storage.manifest_problems(entries, found)

    async def report(self, html: bool) -> tuple[str, bytes | None]:
        """The live version and its evaluation report (JSON, or the HTML page), if stored."""
        version = await self.live_version()
        if version is None:
            raise NoLiveModelError("no model has been published yet")
        key = self._layout.report_html(version) if html else self._layout.report(version)
        try:
            blob = await self._client.get(key)
        except RedisError as exc:
            raise unavailable(exc) from exc
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
            try:
                reply = await self._fetch(believed, item_ids, alternatives)
            except RedisError as exc:
                raise unavailable(exc) from exc
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
        try:
            reply = await self._fetch(version, missing, alternatives)
        except RedisError as exc:
            raise unavailable(exc) from exc
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
        try:
            reply = await self._fetch(believed or "", [], False)
            if not reply.current and reply.live is not None:
                reply = await self._fetch(reply.live, [], False)
        except RedisError as exc:
            raise unavailable(exc) from exc
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
        self, requests: Sequence[CustomerQuery | Sequence[str]]
    ) -> tuple[ModelView, list[Fetched]]:
        """Several lookups in one round trip: a stored customer's history, or a cart.

        Each request is a ``CustomerQuery`` or a sequence of item ids; each answer is the
        history found (None for an unknown customer, or for a cart) and neighbour lists.
        """
        if not requests:
            return await self.live_view(), []
        customer_ids = [r.customer_id for r in requests if isinstance(r, CustomerQuery)]
        version = self._believed or await self.live_version()
        for _attempt in range(3):
            if version is None:
                raise NoLiveModelError("no model has been published yet")
            try:
                reply = await self._customers_script(version, customer_ids)
            except RedisError as exc:
                raise unavailable(exc) from exc
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
            wanted: dict[str, None] = {}
            for req in requests:
                if isinstance(req, CustomerQuery):
                    blob, recent = next(found)
                    history = None if blob is None else StoredHistory.decode(blob)
                    if recent is not None:
                        history = StoredHistory.decode(recent).before(history, cap)
                    histories.append(history)
                    ids: Sequence[str] = history.item_ids if history is not None else []
                else:
                    histories.append(None)
                    ids = req
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
                try:
                    blobs = await self._storage.hmget(view.version, "neighbours", missing)
                except RedisError as exc:
                    raise unavailable(exc) from exc
                if any(b is None for b in blobs):
                    version = await self.live_version()
                    continue  # the version was collected meanwhile: read the pointer again
                got.update(kept.keep(kept.complements, missing, blobs))
            self._believed = view.version
            out = []
            for req, history in zip(requests, histories, strict=True):
                ids = history.item_ids if history is not None else []
                if not isinstance(req, CustomerQuery):
                    ids = req
                out.append(Fetched(history, [got.get(i) for i in ids]))
            return view, out
        raise StoreUnavailableError("the live model changed twice during one request")

    async def set_stock(self, changes: Mapping[str, Mapping[str, Any]]) -> tuple[str, list[str]]:
        """Marks items (un)available or reprices them in the live version; returns that
        version and the ids it does not know (left unchanged)."""
        view = await self.live_view()
        unknown = [i for i in changes if i not in view.index]
        known = {i: c for i, c in changes.items() if i in view.index}
        if not known:
            return view.version, unknown
        try:
            # An A/B test's candidate is served too: the change applies to it as well (an
            # item it does not know keeps an entry it never reads).
            for version in await self._served_versions(view.version):
                stock_key = self._layout.stock(version)
                current = await self._client.hmget(stock_key, list(known))
                merged: dict[str | bytes | bytearray | memoryview | int | float, bytes] = {}
                for (item, change), old in zip(known.items(), current, strict=True):
                    entry = dict(lay.decode_json(old)) if isinstance(old, bytes) else {}
                    entry.update({k: v for k, v in change.items() if v is not None})
                    merged[item] = lay.encode_json(entry)
                async with self._client.pipeline(transaction=True) as pipe:
                    pipe.hset(stock_key, mapping=merged)
                    pipe.incr(self._layout.stock_epoch(version))
                    await pipe.execute()
        except RedisError as exc:
            raise unavailable(exc) from exc
        if self.refresh_interval_s > 0:
            await self.refresh()  # this worker serves the change from its next request
        return view.version, unknown

    async def _served_versions(self, live: str) -> list[str]:
        """``live`` and, while an A/B test runs, its candidate: the versions answers come
        from, which every stock and catalog change reaches."""
        raw = await self._client.get(self._layout.candidate)
        candidate = None if raw is None else cast(bytes, raw).decode()
        return [live] if candidate is None or candidate == live else [live, candidate]

    async def put_items(
        self, items: Mapping[str, Mapping[str, Any]], actor: str
    ) -> tuple[str, list[str]]:
        """Adds items to the catalog, or updates their facts, between trainings; returns the
        live version and the ids it was not trained on (served as new in their category)."""
        view = await self.live_view()
        now = time.time()
        layout = self._layout
        try:
            current = await self._client.hmget(layout.catalog_items, list(items))
        except RedisError as exc:
            raise unavailable(exc) from exc
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
        view = await self.live_view()
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
        try:
            served = await self._served_versions(view.version)
            async with self._client.pipeline(transaction=True) as pipe:
                write(pipe)
                self._audit(pipe, actor, action, ids)
                for version in served:
                    pipe.incr(self._layout.stock_epoch(version))
                await pipe.execute()
        except RedisError as exc:
            raise unavailable(exc) from exc
        await self._changed()

    async def erase_customers(self, customer_ids: Sequence[str], actor: str) -> list[str]:
        """Erases the customers' stored histories from the live, previous and candidate
        versions (the only ones kept) and what live order events added to them, and keeps
        their ids so that no later publish stores them again. Returns the versions that
        held any of them. Audited."""
        layout = self._layout
        try:
            versions = {
                v.decode() if isinstance(v, bytes) else str(v)
                for v in await self._client.mget([layout.live, layout.previous, layout.candidate])
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
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hdel(layout.event_histories, *customer_ids)
                pipe.sadd(layout.erased, *customer_ids)
                self._audit(pipe, actor, "erase_customer", list(customer_ids), versions=held)
                await pipe.execute()
        except RedisError as exc:
            raise unavailable(exc) from exc
        return held

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
        view = await self.live_view()
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
        try:
            reply = await self._storage.script(lay.ORDER_EVENT_SCRIPT, keys, [*argv, *item_ids])
            new, added, kept = reply
        except RedisError as exc:
            raise unavailable(exc) from exc
        return bool(new), max(int(added) - int(kept), 0)

    async def audit_log(self, count: int) -> list[dict[str, Any]]:
        """The latest ``count`` audit entries, newest first."""
        try:
            entries = await self._client.xrevrange(self._layout.audit, count=count)
        except RedisError as exc:
            raise unavailable(exc) from exc
        out = []
        for entry_id, fields in cast(list[tuple[bytes, dict[bytes, bytes]]], entries):
            record = lay.decode_json(fields[b"entry"])
            out.append({"id": entry_id.decode(), **record})
        return out

    def _audit(self, pipe: Any, actor: str, action: str, ids: list[str], **extra: Any) -> None:
        record = {"at": time.time(), "actor": actor, "action": action, "ids": ids, **extra}
        pipe.xadd(
            self._layout.audit,
            {"entry": lay.encode_json(record)},
            maxlen=lay.AUDIT_MAX_ENTRIES,
            approximate=True,
        )

    async def _changed(self) -> None:
        if self.refresh_interval_s > 0:
            await self.refresh()  # this worker serves the change from its next request

    async def _customers_script(self, version: str, customer_ids: Sequence[str]) -> storage.Reply:
        reply = await self._storage.customers(self._pointer, version, customer_ids)
        self._saw_test(reply.test)
        return reply

    async def scan_customers(self, view: ModelView, count: int = 1000) -> Any:
        """Every stored customer of ``view``'s version, as (id, history) pairs, in batches."""
        try:
            async for pairs in self._storage.hscan(view.version, "customers", count):
                yield [(c.decode(), StoredHistory.decode(h)) for c, h in pairs.items()]
        except RedisError as exc:
            raise unavailable(exc) from exc

    async def event_days(self, customer_ids: Sequence[str]) -> list[int]:
        """The latest day each customer bought on through live order events (-1: none)."""
        if not customer_ids:
            return []
        try:
            blobs = await self._client.hmget(self._layout.event_histories, list(customer_ids))
        except RedisError as exc:
            raise unavailable(exc) from exc
        return [-1 if b is None else StoredHistory.decode(cast(bytes, b)).last_day for b in blobs]

    async def scan_event_customers(self, view: ModelView, count: int = 1000) -> Any:
        """Customers known only from live order events (no stored history in ``view``'s
        version), with their event history, in batches."""
        key = self._layout.event_histories
        cursor = 0
        while True:
            try:
                cursor, batch = await self._client.hscan(key, cursor, count=count)
                pairs = cast(dict[bytes, bytes], batch)
                ids = [c.decode() for c in pairs]
                stored = await self._storage.hmget(view.version, "customers", ids)
            except RedisError as exc:
                raise unavailable(exc) from exc
            yield [
                (c, StoredHistory.decode(h))
                for (c, h), old in zip(zip(ids, pairs.values(), strict=True), stored, strict=True)
                if old is None
            ]
            if cursor == 0:
                return

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
        try:
            # No MULTI: Redis at maxmemory refuses a transaction even of reads. The epoch
            # is read before the stock, so a change landing between them makes the next
            # request reload (a newer epoch), never keeps a stale view.
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.get(self._layout.stock_epoch(version))
                pipe.get(self._layout.meta(version))
                pipe.get(self._layout.items(version))
                pipe.get(self._layout.popular(version))
                pipe.get(self._layout.catalog(version))
                pipe.hgetall(self._layout.stock(version))
                pipe.hgetall(self._layout.catalog_items)
                pipe.smembers(self._layout.catalog_deleted)
                result = await pipe.execute()
            epoch, meta, items, popular, catalog, stock, added, deleted = result
        except RedisError as exc:
            raise unavailable(exc) from exc
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


@dataclass(frozen=True)
class Health:
    view: ModelView
    warnings: list[str]


def unavailable(exc: RedisError) -> StoreUnavailableError:
    """A Redis error in the service's terms: a pool that stayed busy past the timeout is
    overload, not an outage; a refused write at ``maxmemory`` is a full store."""
    if isinstance(exc, RedisConnectionError) and isinstance(exc.__cause__, TimeoutError):
        return OverloadedError(
            "every Redis connection stayed busy past the timeout: too many concurrent "
            "requests for the pool; retry shortly"
        )
    if isinstance(exc, OutOfMemoryError):
        return StoreFullError(f"Redis refused the write, it is at maxmemory: {exc}")
    return StoreUnavailableError(f"redis did not answer: {exc}")
