"""What a version is made of (``ModelPayload``) and how it is written: items, popularity,
catalog, neighbour lists, histories, report, then the metadata with its manifest, in
batches, after checking Redis has room for it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

import numpy as np
from redis.exceptions import RedisError

from recsvc import model as lay
from recsvc.answers.picks import PickRecipe
from recsvc.store import backend as storage
from training.errors import (
    StoreFullError,
)
from training.neighbours.base import Neighbours
from training.publish.base import translate
from training.publish.lock import LockHolder
from training.stages.picks import PickMaker

_WRITE_BATCH = 2_000


_HASH_FIELD_OVERHEAD = 64
"""Bytes Redis spends per hash field beyond its name and value (measured: 1,101 B per
item with 20 + 20 neighbours of 12 bytes, 251 B per stored customer)."""


EVICTING_POLICIES = ("allkeys-lru", "allkeys-lfu", "allkeys-random")
"""``maxmemory-policy`` values under which Redis may delete model keys on its own.
Model keys have no expiry, so ``volatile-*`` and ``noeviction`` never touch them."""


class ExternalHistories(Protocol):
    """Stored histories that a distributed engine's workers write themselves (each its
    partitions, in pipelined chunks), rather than through the publisher's process."""

    rows: int
    """Customers to store (before erasures)."""
    bytes_per_row: int
    """About what one stored history takes in Redis, for ``check_room``."""

    def write(
        self,
        connection: dict[str, Any],
        layout: lay.Layout,
        version: str,
        erased: frozenset[str],
        picks: PickMaker | None,
    ) -> dict[int, int]:
        """Writes every history but the ``erased`` customers' under ``version``, each with
        its picks when ``picks`` makes them; returns how many went to each bucket (the
        manifest counts them)."""
        ...


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
    histories: Mapping[str, tuple[list[str], list[int], list[int]]] = field(default_factory=dict)
    """Customer id -> (items, newest first; the day each was last bought; its orders)."""
    external_histories: ExternalHistories | None = None
    """Histories written by an engine's workers instead (``training.engines.spark.engine``)."""
    picks: PickRecipe | None = None
    """Each stored customer's ranked suggestions are stored with the history, ranked so
    (``training.stages.picks``); None: the service ranks every customer online."""


def picks_of(payload: ModelPayload) -> PickMaker | None:
    """What encodes each stored customer's picks, when the version stores picks."""
    if payload.picks is None or payload.picks.n <= 0:
        return None
    if not payload.histories and payload.external_histories is None:
        return None
    return PickMaker(payload.picks, payload.item_ids, payload.neighbours)


PICK_BYTES = 7
"""About what one stored pick takes, deflated (measured: 5.5-7 on Online Retail and
Complete Journey), for ``check_room``."""


def estimate_bytes(payload: ModelPayload) -> int:
    """About what Redis will hold for ``payload``: its values and their hash fields."""
    n = len(payload.item_ids)
    id_bytes = sum(len(i) for i in payload.item_ids)
    total = id_bytes + 3 * n  # items JSON
    for lists in (payload.neighbours, payload.alternatives):
        if lists is not None:
            entries = int((np.asarray(lists.indices) >= 0).sum())
            total += 12 * entries + id_bytes + _HASH_FIELD_OVERHEAD * n
    if payload.catalog is not None:
        total += len(lay.encode_json(payload.catalog))
    customers = len(payload.histories)
    if payload.external_histories is not None:
        rows = payload.external_histories.rows
        total += rows * (payload.external_histories.bytes_per_row + _HASH_FIELD_OVERHEAD)
    if customers:
        sample = list(islice(payload.histories.items(), 1000))
        per = sum(len(c) + len(lay.encode_history(*h)) for c, h in sample) / len(sample)
        total += int(customers * (per + _HASH_FIELD_OVERHEAD))
    if payload.picks is not None:
        stored = customers + (payload.external_histories.rows if payload.external_histories else 0)
        total += stored * payload.picks.n * PICK_BYTES
    if payload.report_html is not None:
        total += len(payload.report_html)
    if payload.report is not None:
        total += len(lay.encode_json(payload.report))
    return total


class VersionWriter(LockHolder):
    """Writes a version whole, after checking Redis has room for it."""

    def check_room(self, payload: ModelPayload) -> None:
        """Refuses before writing when Redis's ``maxmemory`` leaves no room for the
        version; warns when its policy may evict model keys."""
        masters = self._call(self.storage.memory)
        # On a cluster the buckets spread the version evenly: each master holds its share.
        need = estimate_bytes(payload) // len(masters)
        for info in masters:
            policy = str(info.get("maxmemory_policy", ""))
            if policy in EVICTING_POLICIES:
                print(
                    f"warning: Redis maxmemory-policy is {policy}: it may evict keys of the "
                    "live model; use noeviction (or a volatile-* policy) for the model's "
                    "database",
                    file=self.warn,
                )
                break
        for info in masters:
            limit = int(info.get("maxmemory", 0) or 0)
            used = int(info.get("used_memory", 0))
            if limit and used + need > limit:
                where = " on one of its masters" if len(masters) > 1 else ""
                raise StoreFullError(
                    f"Redis has {(limit - used) / 2**20:,.0f} MiB free under maxmemory "
                    f"{limit / 2**20:,.0f} MiB{where} and this version needs about "
                    f"{need / 2**20:,.0f} MiB there; raise maxmemory, or delete other data; "
                    "nothing was written"
                )

    def write(self, payload: ModelPayload, version: str, token: str) -> None:
        """Writes every key of ``version``; the metadata, with the manifest, goes last."""
        keys = self.layout
        n = len(payload.item_ids)
        manifest: list[lay.ManifestEntry] = []

        def put(part: str, blob: bytes) -> None:
            self._call(self.client.set, keys.part(version, part), blob)
            manifest.append(lay.ManifestEntry(part, "string", len(blob)))

        put("items", lay.encode_json(payload.item_ids))
        put(
            "popular",
            lay.encode_pairs(
                payload.popular_indices, payload.popular_scores, payload.popular_counts
            ),
        )
        if payload.catalog is not None:
            put("catalog", lay.encode_json(payload.catalog))
        fields: dict[tuple[str, int], int] = {}

        def count(part: str, added: dict[int, int]) -> None:
            for bucket, k in added.items():
                fields[part, bucket] = fields.get((part, bucket), 0) + k

        for start in range(0, n, _WRITE_BATCH):
            stop = min(n, start + _WRITE_BATCH)
            pipe = self.storage.pipeline()
            for part, lists in (
                ("neighbours", payload.neighbours),
                ("alternatives", payload.alternatives),
            ):
                if lists is None:
                    continue
                mapping = {}
                for i in range(start, stop):
                    idx, sc = lists.row(i)
                    mapping[payload.item_ids[i]] = lay.encode_pairs(idx, sc, lists.counts_row(i))
                count(part, self.storage.put_fields(pipe, version, part, mapping))
            self._call(pipe.execute)
            self._keep_lock(token)
            if self.on_progress:
                self.on_progress(stop, n, "items")
        # Customers erased on request (the admin API) are never stored again, even when
        # the store's export still holds their purchases.
        erased = {bytes(c).decode() for c in self._call(lambda: self.client.smembers(keys.erased))}
        rows = ((c, h) for c, h in payload.histories.items() if c not in erased)
        written, total = 0, len(payload.histories) - len(erased & payload.histories.keys())
        maker = picks_of(payload)
        encode = lay.encode_history if maker is None else maker.value
        pipe = self.storage.pipeline()
        number = 0
        while chunk := list(islice(rows, _WRITE_BATCH)):
            number += 1
            histories = {c: encode(*history) for c, history in chunk}
            count("customers", self.storage.put_fields(pipe, version, "customers", histories))
            written += len(chunk)
            # A few chunks per round trip: Redis parses one while the next is encoded.
            if number % 4 == 0 or written == total:
                self._call(pipe.execute)
                self._keep_lock(token)
                if self.on_progress:
                    self.on_progress(written, total, "customers")
        self._call(pipe.execute)
        if payload.external_histories is not None:
            spec = storage.connection_spec(self.client)
            try:
                count(
                    "customers",
                    payload.external_histories.write(
                        spec, self.layout, version, frozenset(erased), maker
                    ),
                )
            except RedisError as exc:
                raise translate(exc) from exc
            self._keep_lock(token)
        for (part, bucket), k in sorted(fields.items()):
            at = bucket if self.layout.cluster else None  # one hash: its whole size
            manifest.append(lay.ManifestEntry(part, "hash", k, at))
        if payload.report is not None:
            put("report", lay.encode_json(payload.report))
        if payload.report_html is not None:
            put("report.html", payload.report_html.encode())
        meta = {
            **payload.meta,
            **({} if maker is None else {"picks": maker.recipe.as_meta()}),
            "format": lay.FORMAT_VERSION,
            "version": version,
            "manifest": [e.as_json() for e in manifest],
        }
        self._keep_lock(token)
        self._call(self.client.set, keys.meta(version), lay.encode_json(meta))
