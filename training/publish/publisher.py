"""Stage 6: publish a model version to Redis, whole, then switch it live atomically.

One trainer per key prefix: a run holds the publisher lock from before it reads its
input until it has switched (``Publisher.hold``), renewed by a thread, so a second
trainer stops at once with a clear exit and the model live before stays for rollback.

Order of writes: items, popularity, catalog, neighbour lists, histories, report, then
the metadata, which carries the version's manifest (every key with its size). The switch
is one script that checks the lock is still ours and every manifest key is there with
its size, then moves the pointer. Until the switch readers keep the live version; after
it they get the new one whole. Every key of every version lives under one pattern, so
after a switch a ``SCAN`` finds and deletes all but the live and previous versions,
including what a killed or stalled trainer wrote after it lost the lock.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol, TextIO

import numpy as np
import orjson
from redis.exceptions import OutOfMemoryError, RedisError

from recsvc import model as lay
from recsvc.config import redact_url
from recsvc.experiments.experiment import Experiment
from recsvc.store import backend as storage
from training.errors import (
    LockedError,
    NoModelError,
    StoreFullError,
    StoreUnavailableError,
    TrainingError,
)
from training.neighbours.methods import Neighbours

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
        self, connection: dict[str, Any], layout: lay.Layout, version: str, erased: frozenset[str]
    ) -> dict[int, int]:
        """Writes every history but the ``erased`` customers' under ``version``; returns
        how many went to each bucket (the manifest counts them)."""
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


LOCK_TTL_MS = 30_000
"""How long the publish lock outlives a trainer that stopped renewing it (killed, say):
a trainer started after a crash waits this long at most (``--wait-lock``)."""


class Publisher:
    def __init__(
        self,
        client: storage.SyncClient,
        layout: lay.Layout,
        lock_ttl_ms: int = LOCK_TTL_MS,
        on_progress: Callable[[int, int, str], None] | None = None,
        warn: TextIO | None = None,
    ) -> None:
        self.client = client
        self.layout = layout
        self.storage = storage.sync_storage(client, layout)
        self.lock_ttl_ms = lock_ttl_ms
        self.on_progress = on_progress
        self.warn = warn or sys.stderr
        self._switch = client.register_script(lay.SWITCH_SCRIPT)
        self._rollback = client.register_script(lay.ROLLBACK_SCRIPT)
        self._candidate = client.register_script(lay.CANDIDATE_SCRIPT)
        self._promote = client.register_script(lay.PROMOTE_SCRIPT)
        self._abort = client.register_script(lay.ABORT_SCRIPT)
        self._renew = client.register_script(lay.RENEW_LOCK_SCRIPT)
        self._release = client.register_script(lay.RELEASE_LOCK_SCRIPT)
        self._token: str | None = None
        self._lost = threading.Event()

    # -- reads -----------------------------------------------------------------------

    def live_version(self) -> str | None:
        return self._get(self.layout.live)

    def previous_version(self) -> str | None:
        return self._get(self.layout.previous)

    def candidate_version(self) -> str | None:
        return self._get(self.layout.candidate)

    def experiment(self) -> Experiment | None:
        """The A/B test in force, if any."""
        raw = self._call(self.client.get, self.layout.experiment)
        return None if raw is None else Experiment.decode(raw)

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
            raise _translate(exc) from exc

    # -- lock --------------------------------------------------------------------------

    @contextmanager
    def hold(self, wait_s: float = 0.0) -> Iterator[str]:
        """Holds the publisher lock for a whole run, renewed every third of its expiry by
        a thread; a killed trainer frees it when it expires. Waits up to ``wait_s`` for
        another holder to finish. Nested calls share the lock."""
        if self._token is not None:
            yield self._token
            return
        token = secrets.token_hex(16)
        deadline = time.monotonic() + wait_s
        while (
            not (
                acquired := self._call(
                    lambda: self.client.set(self.layout.lock, token, nx=True, px=self.lock_ttl_ms)
                )
            )
            and time.monotonic() < deadline
        ):
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        if not acquired:
            left = self._call(self.client.pttl, self.layout.lock)
            expiry = (
                f"; it expires in {max(0, int(left)) / 1000:.0f} s unless renewed" if left else ""
            )
            raise LockedError(
                f"another trainer holds the lock on prefix {self.layout.prefix!r}{expiry} "
                "(one trainer per prefix; a killed one frees it when it expires)"
            )
        self._token = token
        self._lost.clear()
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew_until, args=(token, stop), name="recsvc-lock", daemon=True
        )
        renewer.start()
        try:
            yield token
        finally:
            stop.set()
            renewer.join()
            self._token = None
            with contextlib.suppress(RedisError):  # else the expiry frees it
                self._release(keys=[self.layout.lock], args=[token])

    def _renew_until(self, token: str, stop: threading.Event) -> None:
        while not stop.wait(self.lock_ttl_ms / 3000):
            try:
                if not self._renew(keys=[self.layout.lock], args=[token, self.lock_ttl_ms]):
                    self._lost.set()
                    return
            except RedisError:
                continue  # Redis is away: the writes will fail too, or it comes back in time

    def _keep_lock(self, token: str) -> None:
        if self._lost.is_set() or not self._call(
            lambda: self._renew(keys=[self.layout.lock], args=[token, self.lock_ttl_ms])
        ):
            raise LockedError("publisher lock lost while writing; nothing was switched")

    # -- writes ------------------------------------------------------------------------

    def publish(
        self, payload: ModelPayload, version: str | None = None, ab_share: float | None = None
    ) -> str:
        """Writes the version whole, then makes it live; or, with ``ab_share``, the
        candidate of an A/B test served beside the live version to that share of traffic
        (the live version stays live; ``promote`` or ``abort`` ends the test)."""
        version = version or lay.new_version()
        with self.hold() as token:
            if ab_share is not None and self.live_version() is None:
                raise NoModelError(
                    "no live version to test a candidate against: publish one without "
                    "--ab-share first; nothing was written"
                )
            self.check_room(payload)
            self.write(payload, version, token)
            if ab_share is None:
                self.switch(version, token)
            else:
                self.start_test(version, ab_share, token)
            self.collect_garbage()
        return version

    def start_test(self, version: str, share: float, token: str) -> Experiment:
        """Serves the written ``version`` as the candidate of a new A/B test (replacing a
        test already running, whose candidate is then collected)."""
        keys = self.layout
        live = self.live_version()
        if live is None:
            raise NoModelError("no live version to test a candidate against")
        test = Experiment.start(version, live, share)
        self._move(
            self._candidate,
            version,
            [keys.lock, keys.live, keys.candidate, keys.experiment],
            [token, version, test.encode()],
            "A/B start refused",
            LockedError(f"A/B start refused: version {version} has no metadata"),
        )
        return test

    def promote(self) -> str:
        """Ends the A/B test by making its candidate live; the live version becomes the
        previous one (``rollback`` undoes the promotion). Returns the new live version."""
        keys = self.layout
        with self.hold() as token:
            test = self.experiment()
            candidate = self.candidate_version()
            if test is None or candidate is None:
                raise NoModelError("no A/B test is running: nothing to promote")
            self._move(
                self._promote,
                candidate,
                [keys.lock, keys.live, keys.previous, keys.candidate, keys.experiment,
                 keys.experiments],
                [token, candidate, self._ended(test, "promoted"), lay.EXPERIMENTS_KEPT],
                "promotion refused, the live version stays",
                TrainingError(
                    f"promotion refused: candidate {candidate} has no metadata (deleted or "
                    "evicted); abort the test"
                ),
            )  # fmt: skip
            self.collect_garbage()
            return candidate

    def abort(self) -> str:
        """Ends the A/B test; the live version stays, the candidate is collected. Returns
        the candidate's version."""
        keys = self.layout
        with self.hold() as token:
            test = self.experiment()
            if test is None:
                raise NoModelError("no A/B test is running: nothing to abort")
            try:
                candidate = self._abort(
                    keys=[keys.lock, keys.candidate, keys.experiment, keys.experiments],
                    args=[token, self._ended(test, "aborted"), lay.EXPERIMENTS_KEPT],
                )
            except RedisError as exc:
                raise _refusal(exc, "abort refused") from exc
            self.collect_garbage()
            return bytes(candidate).decode()

    def _ended(self, test: Experiment, outcome: str) -> bytes:
        ended = {**orjson.loads(test.encode()), "outcome": outcome, "ended_at": time.time()}
        return orjson.dumps(ended)

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
        pipe = self.storage.pipeline()
        number = 0
        while chunk := list(islice(rows, _WRITE_BATCH)):
            number += 1
            histories = {c: lay.encode_history(*history) for c, history in chunk}
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
                    payload.external_histories.write(spec, self.layout, version, frozenset(erased)),
                )
            except RedisError as exc:
                raise _translate(exc) from exc
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
            "format": lay.FORMAT_VERSION,
            "version": version,
            "manifest": [e.as_json() for e in manifest],
        }
        self._keep_lock(token)
        self._call(self.client.set, keys.meta(version), lay.encode_json(meta))

    def switch(self, version: str, token: str) -> str | None:
        keys = self.layout
        old = self._move(
            self._switch,
            version,
            [keys.lock, keys.live, keys.previous],
            [token, version],
            "switch refused",
            LockedError(f"switch refused: version {version} has no metadata"),
        )
        return None if old is None else bytes(old).decode()

    def rollback(self) -> str:
        """Makes the previous version live again (and the current one previous), only if
        every key of the previous version's manifest is still there."""
        keys = self.layout
        with self.hold() as token:
            previous = self.previous_version()
            if previous is None:
                raise NoModelError("no previous version to roll back to; the live version stays")
            self._move(
                self._rollback,
                previous,
                [keys.lock, keys.live, keys.previous],
                [token, previous],
                "rollback refused, the live version stays",
                TrainingError(
                    f"rollback refused: previous version {previous} has no metadata (deleted "
                    "or evicted); the live version stays"
                ),
            )
            return previous

    def _move(
        self,
        script: Any,
        version: str,
        keys: list[str],
        args: list[Any],
        refused: str,
        no_meta: TrainingError,
    ) -> Any:
        """Runs a script that moves a pointer to ``version`` (switch, rollback, A/B start,
        promotion): its ``keys`` then the version's metadata and manifest keys, its
        ``args`` then the manifest's specs, the script's refusal in the trainer's terms."""
        meta = self.meta(version)
        if meta is None:
            raise no_meta
        # On a cluster the buckets live in other slots than the pointer, where the script
        # cannot look: they are checked just before it, under the same lock (a version's
        # keys never change once written; only an evicting Redis or a hand could take one).
        outside = self.layout.outside_script(meta)
        if outside:
            found = self._call(
                self.storage.inspect, [self.layout.entry_key(version, e) for e in outside]
            )
            problems = storage.manifest_problems(outside, found)
            if problems:
                raise TrainingError(f"{refused}: INCOMPLETE {'; '.join(problems)}")
        manifest_keys, specs = self.layout.verify_args(version, meta)
        try:
            return script(
                keys=[*keys, self.layout.meta(version), *manifest_keys], args=[*args, *specs]
            )
        except RedisError as exc:
            raise _refusal(exc, refused) from exc

    def collect_garbage(self) -> list[str]:
        """Deletes every key of every version but the live, the previous and an A/B test's
        candidate, whether
        its version finished, was registered, or was written by a trainer that lost the
        lock. Found by ``SCAN``, so nothing a trainer writes can be missed."""
        keep = {self.live_version(), self.previous_version(), self.candidate_version(), None}
        keys = self._call(lambda: list(self.storage.scan(self.layout.model_pattern)))
        doomed_keys: list[bytes] = []
        doomed: set[str] = set()
        for key in keys:
            version = self.layout.version_of(bytes(key).decode(errors="replace"))
            if version not in keep:
                doomed.add(str(version))
                doomed_keys.append(key)
        # Metadata first: a reader that meets a version without it re-reads the pointer,
        # where one with metadata but missing keys would report the version incomplete.
        metas = {self.layout.meta(v).encode() for v in doomed}
        doomed_keys.sort(key=lambda k: k not in metas)
        self._call(self.storage.unlink, doomed_keys)
        self._call(self.client.delete, self.layout.versions)  # the registry older builds kept
        return sorted(doomed)


def _translate(exc: RedisError) -> TrainingError:
    """Redis's errors in the trainer's terms: out of memory is not an outage."""
    text = redact_url(str(exc))
    if isinstance(exc, OutOfMemoryError) or text.startswith("OOM"):
        return StoreFullError(
            f"Redis is out of memory (maxmemory reached under a noeviction policy): {text}; "
            "the live model is unchanged"
        )
    return StoreUnavailableError(f"redis: {text}")


def _refusal(exc: RedisError, what: str) -> TrainingError:
    """A switch or rollback script's refusal: lost lock, incomplete version, or Redis."""
    text = str(exc)
    if text.startswith("LOCKLOST"):
        return LockedError(f"{what}: {text}")
    if text.split(" ", 1)[0] in ("NOLIVE", "NOCANDIDATE"):
        return NoModelError(f"{what}: {text}")
    if text.split(" ", 1)[0] in ("INCOMPLETE", "NOPREVIOUS", "CHANGED"):
        return TrainingError(f"{what}: {text}")
    return _translate(exc)


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
    if payload.report_html is not None:
        total += len(payload.report_html)
    if payload.report is not None:
        total += len(lay.encode_json(payload.report))
    return total
