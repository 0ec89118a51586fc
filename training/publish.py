"""Stage 6: publish a model version to Redis, whole, then switch it live atomically.

Order of writes: register the version (so leftovers of a killed run can be found), write
items, popularity and neighbour lists, write the metadata last, then switch the pointer
with a script that checks the lock is still ours. Until the switch, readers keep the
live version; after it, they get the new one whole. Versions other than the live and
the previous one are deleted after a successful switch.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
import redis
from redis.exceptions import RedisError, ResponseError

from recsvc import layout as lay
from training.errors import LockedError, StoreUnavailableError, TrainingError
from training.neighbours import Neighbours

_WRITE_BATCH = 2_000


@dataclass(frozen=True)
class ModelPayload:
    """What one version holds, in the trainer's terms; ``layout`` decides the bytes."""

    item_ids: list[str]
    neighbours: Neighbours
    popular_indices: np.ndarray
    popular_scores: np.ndarray
    meta: dict[str, Any]
    report: dict[str, Any] | None = None
    report_html: str | None = None
    alternatives: Neighbours | None = None
    catalog: list[dict[str, Any]] | None = None
    """Aligned with ``item_ids``: title, category, price, available, extras."""
    popular_counts: np.ndarray | None = None
    """Customers who bought each popular item: the evidence of a popular suggestion."""
    histories: Mapping[str, tuple[list[str], list[int]]] = field(default_factory=dict)
    """Customer id -> (latest distinct items, newest first; the day each was last bought)."""


class Publisher:
    def __init__(
        self,
        client: redis.Redis,
        layout: lay.Layout,
        lock_ttl_ms: int = 60_000,
        on_progress: Callable[[int, int, str], None] | None = None,
    ) -> None:
        self.client = client
        self.layout = layout
        self.lock_ttl_ms = lock_ttl_ms
        self.on_progress = on_progress
        self._switch = client.register_script(lay.SWITCH_SCRIPT)
        self._rollback = client.register_script(lay.ROLLBACK_SCRIPT)
        self._renew = client.register_script(lay.RENEW_LOCK_SCRIPT)
        self._release = client.register_script(lay.RELEASE_LOCK_SCRIPT)

    # -- reads -----------------------------------------------------------------------

    def live_version(self) -> str | None:
        return self._get(self.layout.live)

    def previous_version(self) -> str | None:
        return self._get(self.layout.previous)

    def meta(self, version: str) -> dict[str, Any] | None:
        raw = self._call(self.client.get, self.layout.meta(version))
        return None if raw is None else dict(lay.decode_json(raw))

    def _get(self, key: str) -> str | None:
        raw = self._call(self.client.get, key)
        return None if raw is None else bytes(raw).decode()

    @staticmethod
    def _call(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except RedisError as exc:
            raise StoreUnavailableError(f"redis: {exc}") from exc

    # -- lock --------------------------------------------------------------------------

    @contextmanager
    def lock(self) -> Iterator[str]:
        """Holds the publisher lock; it expires on its own if this process dies."""
        token = secrets.token_hex(16)
        acquired = self._call(
            lambda: self.client.set(self.layout.lock, token, nx=True, px=self.lock_ttl_ms)
        )
        if not acquired:
            raise LockedError("another trainer is publishing (lock held); try again later")
        try:
            yield token
        finally:
            with contextlib.suppress(RedisError):  # else the expiry frees it
                self._release(keys=[self.layout.lock], args=[token])

    def _keep_lock(self, token: str) -> None:
        if not self._call(
            lambda: self._renew(keys=[self.layout.lock], args=[token, self.lock_ttl_ms])
        ):
            raise LockedError("publisher lock expired while writing; nothing was switched")

    # -- writes ------------------------------------------------------------------------

    def publish(self, payload: ModelPayload, version: str | None = None) -> str:
        version = version or lay.new_version()
        with self.lock() as token:
            self.write(payload, version, token)
            self.switch(version, token)
            self.collect_garbage()
        return version

    def write(self, payload: ModelPayload, version: str, token: str) -> None:
        """Writes every key of ``version``; the metadata goes last."""
        keys = self.layout
        n = len(payload.item_ids)
        self._call(self.client.sadd, keys.versions, version)
        self._call(self.client.set, keys.items(version), lay.encode_json(payload.item_ids))
        self._call(
            self.client.set,
            keys.popular(version),
            lay.encode_pairs(
                payload.popular_indices, payload.popular_scores, payload.popular_counts
            ),
        )
        if payload.catalog is not None:
            self._call(self.client.set, keys.catalog(version), lay.encode_json(payload.catalog))
        for start in range(0, n, _WRITE_BATCH):
            stop = min(n, start + _WRITE_BATCH)
            for key, lists in (
                (keys.neighbours(version), payload.neighbours),
                (keys.alternatives(version), payload.alternatives),
            ):
                if lists is None:
                    continue
                mapping = {}
                for i in range(start, stop):
                    idx, sc = lists.row(i)
                    mapping[payload.item_ids[i]] = lay.encode_pairs(idx, sc, lists.counts_row(i))
                self._call(lambda k=key, m=mapping: self.client.hset(k, mapping=m))
            self._keep_lock(token)
            if self.on_progress:
                self.on_progress(stop, n, "items")
        rows = iter(payload.histories.items())
        written, total = 0, len(payload.histories)
        pipe = self.client.pipeline(transaction=False)
        number = 0
        while chunk := list(islice(rows, _WRITE_BATCH)):
            number += 1
            pipe.hset(
                keys.customers(version),
                mapping={c: lay.encode_json([items, days]) for c, (items, days) in chunk},
            )
            written += len(chunk)
            # A few chunks per round trip: Redis parses one while the next is encoded.
            if number % 4 == 0 or written == total:
                self._call(pipe.execute)
                self._keep_lock(token)
                if self.on_progress:
                    self.on_progress(written, total, "customers")
        self._call(pipe.execute)
        if payload.report is not None:
            self._call(self.client.set, keys.report(version), lay.encode_json(payload.report))
        if payload.report_html is not None:
            self._call(self.client.set, keys.report_html(version), payload.report_html.encode())
        meta = {**payload.meta, "format": lay.FORMAT_VERSION, "version": version}
        self._call(self.client.set, keys.meta(version), lay.encode_json(meta))

    def switch(self, version: str, token: str) -> str | None:
        keys = self.layout
        try:
            old = self._switch(
                keys=[keys.lock, keys.live, keys.previous, keys.meta(version)],
                args=[token, version],
            )
        except ResponseError as exc:
            raise LockedError(f"switch refused: {exc}") from exc
        except RedisError as exc:
            raise StoreUnavailableError(f"redis: {exc}") from exc
        return None if old is None else bytes(old).decode()

    def rollback(self) -> str:
        """Makes the previous version live again (and the current one previous)."""
        keys = self.layout
        with self.lock() as token:
            previous = self.previous_version()
            if previous is None:
                raise TrainingError("no previous version to roll back to")
            try:
                self._rollback(
                    keys=[keys.lock, keys.live, keys.previous, keys.meta(previous)], args=[token]
                )
            except ResponseError as exc:
                raise TrainingError(f"rollback refused: {exc}") from exc
            except RedisError as exc:
                raise StoreUnavailableError(f"redis: {exc}") from exc
            return previous

    def collect_garbage(self) -> list[str]:
        """Deletes every version but the live and the previous one, finished or not."""
        keep = {self.live_version(), self.previous_version()}
        registered = self._call(self.client.smembers, self.layout.versions)
        doomed = sorted(v.decode() for v in registered if v.decode() not in keep)
        for version in doomed:
            self._call(self.client.delete, *self.layout.model_keys(version))
            self._call(self.client.srem, self.layout.versions, version)
        return doomed
