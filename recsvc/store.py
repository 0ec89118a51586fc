"""Reads the live model from Redis for the service.

Each request costs one Redis round trip (``FETCH_SCRIPT``: the version pointer and the
neighbour lists together). What a version holds besides neighbour lists (item ids,
popularity, metadata) is loaded once when a new version is first seen and cached, which
is how a newly published model is served at once without a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from recsvc import layout as lay
from recsvc.errors import NoLiveModelError, StoreUnavailableError


@dataclass(frozen=True)
class ModelView:
    """Everything about one version that is not fetched per request."""

    version: str
    meta: dict[str, Any]
    item_ids: tuple[str, ...]
    index: dict[str, int]
    popular: lay.IntArray

    @classmethod
    def from_blobs(cls, version: str, meta: bytes, items: bytes, popular: bytes) -> ModelView:
        decoded_meta = lay.decode_json(meta)
        lay.check_format(decoded_meta)
        item_ids = tuple(lay.decode_json(items))
        popular_idx, _ = lay.decode_pairs(popular)
        return cls(
            version=version,
            meta=decoded_meta,
            item_ids=item_ids,
            index={item: i for i, item in enumerate(item_ids)},
            popular=popular_idx,
        )


@dataclass(frozen=True)
class CustomerQuery:
    customer_id: str


@dataclass(frozen=True)
class StoredHistory:
    item_ids: list[str]
    """Newest first."""
    days: list[int]
    """Day of each item's latest purchase, since 1970-01-01 (-1: undated)."""

    @classmethod
    def decode(cls, blob: bytes) -> StoredHistory:
        try:
            items, days = lay.decode_json(blob)
            return cls([str(i) for i in items], [int(d) for d in days])
        except (ValueError, TypeError) as exc:
            raise StoreUnavailableError(f"corrupt stored history: {exc}") from exc

    @property
    def last_day(self) -> int:
        return max(self.days, default=-1)


@dataclass(frozen=True)
class Fetched:
    history: StoredHistory | None
    blobs: list[bytes | None]


class ModelStore:
    def __init__(self, client: aioredis.Redis, layout: lay.Layout) -> None:
        self._client = client
        self._layout = layout
        self._fetch_sha = hashlib.sha1(lay.FETCH_SCRIPT.encode()).hexdigest()
        self._customer_sha = hashlib.sha1(lay.CUSTOMER_FETCH_SCRIPT.encode()).hexdigest()
        self._views: dict[str, ModelView] = {}
        self._scripts_loaded = False
        self._load_lock = asyncio.Lock()

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except RedisError as exc:
            raise StoreUnavailableError(f"redis did not answer: {exc}") from exc

    async def live_version(self) -> str | None:
        try:
            raw = await self._client.get(self._layout.live)
        except RedisError as exc:
            raise StoreUnavailableError(f"redis did not answer: {exc}") from exc
        return raw.decode() if isinstance(raw, bytes) else raw

    async def live_view(self) -> ModelView:
        version = await self.live_version()
        if version is None:
            raise NoLiveModelError("no model has been published yet")
        return await self._view(version)

    async def report(self, html: bool) -> tuple[str, bytes | None]:
        """The live version and its evaluation report (JSON, or the HTML page), if stored."""
        version = await self.live_version()
        if version is None:
            raise NoLiveModelError("no model has been published yet")
        key = self._layout.report_html(version) if html else self._layout.report(version)
        try:
            blob = await self._client.get(key)
        except RedisError as exc:
            raise StoreUnavailableError(f"redis did not answer: {exc}") from exc
        return version, blob if isinstance(blob, bytes) else None

    async def neighbours(self, item_ids: Sequence[str]) -> tuple[ModelView, list[bytes | None]]:
        """The live version and the packed neighbour list of each item (None if unknown)."""
        for _attempt in range(2):
            try:
                version_raw, blobs = await self._fetch(item_ids)
            except RedisError as exc:
                raise StoreUnavailableError(f"redis did not answer: {exc}") from exc
            if version_raw is None:
                raise NoLiveModelError("no model has been published yet")
            version = version_raw.decode()
            try:
                view = await self._view(version)
            except _VersionGoneError:
                continue  # two publishes raced past us; read the new pointer again
            return view, list(blobs)
        raise StoreUnavailableError("the live model changed twice during one request")

    async def customers(
        self, requests: Sequence[CustomerQuery | Sequence[str]]
    ) -> tuple[ModelView, list[Fetched]]:
        """Several lookups in one round trip: a stored customer's history, or a cart.

        Each request is a ``CustomerQuery`` or a sequence of item ids; each answer is the
        history found (None for an unknown customer, or for a cart) and neighbour lists.
        """
        if not requests:
            return await self.live_view(), []
        for _attempt in range(2):
            try:
                replies = await self._pipeline(requests)
            except RedisError as exc:
                raise StoreUnavailableError(f"redis did not answer: {exc}") from exc
            versions = {r[0] for r in replies}
            if None in versions:
                raise NoLiveModelError("no model has been published yet")
            if len(versions) > 1:
                continue  # a switch landed between two lookups of the pipeline
            try:
                view = await self._view(bytes(replies[0][0]).decode())
            except _VersionGoneError:
                continue
            out = []
            for reply in replies:
                if len(reply) == 3:
                    history = None if reply[1] is None else StoredHistory.decode(reply[1])
                    out.append(Fetched(history, list(reply[2])))
                else:
                    out.append(Fetched(None, list(reply[1])))
            return view, out
        raise StoreUnavailableError("the live model changed twice during one request")

    async def _pipeline(self, requests: Sequence[CustomerQuery | Sequence[str]]) -> list[Any]:
        try:
            return await self._run_pipeline(requests)
        except NoScriptError:
            self._scripts_loaded = False  # Redis restarted and lost its script cache
            return await self._run_pipeline(requests)

    async def _run_pipeline(self, requests: Sequence[CustomerQuery | Sequence[str]]) -> list[Any]:
        await self._ensure_scripts()
        live = self._layout.live
        async with self._client.pipeline(transaction=False) as pipe:
            for req in requests:
                if isinstance(req, CustomerQuery):
                    args = self._layout.customer_fetch_args(req.customer_id)
                    pipe.evalsha(self._customer_sha, 1, live, *args)
                else:
                    pipe.evalsha(self._fetch_sha, 1, live, *self._layout.fetch_args(req))
            replies = await pipe.execute()
        # Lua false arrives as None; the script returns 3 parts for a customer, 2 for a cart.
        return [list(r) for r in replies]

    async def _ensure_scripts(self) -> None:
        if self._scripts_loaded:
            return
        await self._client.script_load(lay.FETCH_SCRIPT)
        await self._client.script_load(lay.CUSTOMER_FETCH_SCRIPT)
        self._scripts_loaded = True

    async def scan_customers(self, view: ModelView, count: int = 1000) -> Any:
        """Every stored customer of ``view``'s version, as (id, history) pairs, in batches."""
        key = self._layout.customers(view.version)
        cursor = 0
        while True:
            try:
                cursor, batch = await self._client.hscan(key, cursor, count=count)
            except RedisError as exc:
                raise StoreUnavailableError(f"redis did not answer: {exc}") from exc
            pairs = cast(dict[bytes, bytes], batch)
            yield [(c.decode(), StoredHistory.decode(h)) for c, h in pairs.items()]
            if cursor == 0:
                return

    async def _fetch(self, item_ids: Sequence[str]) -> Any:
        # EVALSHA by hand: redis-py's Script wrapper inspects its arguments on every call,
        # which measured as a third of a cart request's time.
        args = (self._layout.live, *self._layout.fetch_args(item_ids))
        try:
            return await self._client.evalsha(self._fetch_sha, 1, *args)
        except NoScriptError:
            await self._client.script_load(lay.FETCH_SCRIPT)
            return await self._client.evalsha(self._fetch_sha, 1, *args)

    async def _view(self, version: str) -> ModelView:
        view = self._views.get(version)
        if view is not None:
            return view
        async with self._load_lock:
            view = self._views.get(version)
            if view is not None:
                return view
            view = await self._load(version)
            # Keep the newest two: the live one and the one requests may still be on.
            self._views = {version: view, **dict(list(self._views.items())[:1])}
            return view

    async def _load(self, version: str) -> ModelView:
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.get(self._layout.meta(version))
                pipe.get(self._layout.items(version))
                pipe.get(self._layout.popular(version))
                meta, items, popular = await pipe.execute()
        except RedisError as exc:
            raise StoreUnavailableError(f"redis did not answer: {exc}") from exc
        if meta is None or items is None or popular is None:
            raise _VersionGoneError(version)
        try:
            return ModelView.from_blobs(version, meta, items, popular)
        except ValueError as exc:
            raise StoreUnavailableError(f"model {version} is unreadable: {exc}") from exc


class _VersionGoneError(Exception):
    pass


def decode_neighbours(blob: bytes) -> tuple[lay.IntArray, lay.FloatArray]:
    try:
        return lay.decode_pairs(blob)
    except ValueError as exc:
        raise StoreUnavailableError(f"corrupt neighbour list: {exc}") from exc
