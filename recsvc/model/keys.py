"""The key names of a published model, on a single node and on a cluster.

Everything a model version owns lives under ``{prefix}:model:{version}:``; the single key
``{prefix}:live`` names the version being served, so switching models is one atomic write
and a reader never sees a half-written or mixed model."""

from __future__ import annotations

import re
import secrets
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ClassVar

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from recsvc.model.manifest import MANIFEST_PARTS, ManifestEntry, manifest_of

SALES_DAYS_KEPT = 400
"""Days the per-day sales counts are kept (a year and a season to compare with)."""


EXPERIMENTS_KEPT = 1_000
"""Ended A/B tests the ``experiments`` stream keeps."""


AUDIT_MAX_ENTRIES = 100_000
"""Entries the audit stream keeps (about 150 bytes each)."""


def today() -> str:
    """The UTC day the sales counts of now go to (``Layout.sales_day``)."""
    return datetime.now(UTC).strftime("%Y-%m-%d")


CLUSTER_BUCKETS = 64
"""Buckets each per-item and per-customer hash of a version is split into on a Redis
Cluster: each bucket its own hash tag, the tags spread evenly over the 16,384 slots, so a
version's lists and histories spread across every shard (64 buckets: about 21 on each of
3 masters, 4 on each of 16)."""


BUCKETED_PARTS = ("neighbours", "alternatives", "customers")
"""The parts held per item or per customer: one hash on a single node, ``buckets``
hashes on a cluster."""


@dataclass(frozen=True)
class Layout:
    """Key names under one prefix; tests give each case its own prefix on a shared server.

    Two shapes, one set of names (``Layout.for_cluster``):

    - **single node**: keys as ``{prefix}:live``, ``{prefix}:model:{version}:neighbours``;
    - **cluster**: every key that a pointer-moving script, the lock or the version's
      metadata touches carries the hash tag ``{prefix}`` (one slot: the switch stays one
      atomic script), while the per-item and per-customer hashes are split into
      ``buckets`` hashes, each tagged ``{prefix/tag}`` with tags spread over the slots.
    """

    prefix: str = "recsvc"
    cluster: bool = False
    buckets: int = field(default=1)

    def __post_init__(self) -> None:
        if self.buckets < 1 or (self.buckets > 1 and not self.cluster):
            raise ValueError("buckets > 1 only on a cluster layout")

    @classmethod
    def for_cluster(cls, prefix: str = "recsvc", buckets: int = CLUSTER_BUCKETS) -> Layout:
        return cls(prefix, cluster=True, buckets=buckets)

    @property
    def root(self) -> str:
        """What every key name starts with: the prefix, hash-tagged on a cluster."""
        return f"{{{self.prefix}}}" if self.cluster else self.prefix

    @property
    def live(self) -> str:
        """The version pointer: a plain string key holding the live version id."""
        return f"{self.root}:live"

    LIVE_PATTERN: ClassVar[str] = "*:live"
    """Matches every prefix's version pointer (``SCAN``), on either kind of layout."""

    @staticmethod
    def prefix_of_live(key: str) -> str | None:
        """The prefix whose version pointer ``key`` is (``p:live`` or ``{p}:live``), or
        None for any other key."""
        root, _, tail = key.rpartition(":")
        if tail != "live" or not root or ":" in root:
            return None
        if root.startswith("{") and root.endswith("}"):
            root = root[1:-1]
        return root or None

    @property
    def previous(self) -> str:
        """The version that was live before the current one, kept for rollback."""
        return f"{self.root}:previous"

    @property
    def candidate(self) -> str:
        """The candidate pointer of an A/B test: a version served beside the live one to
        a share of traffic (``experiment``); a plain string key like ``live``, so the same
        fetch script reads either."""
        return f"{self.root}:candidate"

    @property
    def experiment(self) -> str:
        """JSON of the A/B test in force (``Experiment``): its id, the candidate version,
        the share of traffic it gets, when it started, the live version it started
        against. Written and deleted with ``candidate``, in one script."""
        return f"{self.root}:experiment"

    @property
    def experiments(self) -> str:
        """Stream of ended A/B tests (promoted or aborted), for the sales report."""
        return f"{self.root}:experiments"

    @property
    def sales_total(self) -> str:
        """Hash: ``version|arm|slot|measure`` -> attributed orders, lines, revenue and
        squared revenue per order (``slot`` ``-`` and measure ``answers``: answers served),
        ever; what ``/metrics`` exposes."""
        return f"{self.root}:sales:total"

    def sales_day(self, day: str) -> str:
        """The same counts for one UTC day (``YYYY-MM-DD``), kept ``SALES_DAYS_KEPT``
        days, for ``recsvc report sales --since``."""
        return f"{self.root}:sales:day:{day}"

    @property
    def lock(self) -> str:
        """Publisher lock: a random token with an expiry, so a killed trainer frees it."""
        return f"{self.root}:lock"

    @property
    def versions(self) -> str:
        """Legacy: a set of versions, replaced by scanning ``model_pattern``; the next
        publish deletes it."""
        return f"{self.root}:versions"

    @property
    def catalog_items(self) -> str:
        """Hash: item id -> JSON catalog facts (``title``, ``category``, ``price``,
        ``available``, extras) added or updated by the admin API between trainings. Kept
        across versions: an item a version does not know is served as a new item of its
        category; one it knows has its facts overridden."""
        return f"{self.root}:catalog:items"

    @property
    def catalog_deleted(self) -> str:
        """Set of item ids deleted by the admin API: never suggested, by any version, until
        added again."""
        return f"{self.root}:catalog:deleted"

    @property
    def erased(self) -> str:
        """Set of customer ids whose stored history was erased on request: every stored
        version holds an empty history for them, and no later publish stores one."""
        return f"{self.root}:erased"

    @property
    def events(self) -> str:
        """Stream of live order events (``POST /v1/events/orders``), capped at the
        service's ``events_max`` entries, oldest trimmed first; ``train --include-events``
        folds them into the next training."""
        return f"{self.root}:events"

    @property
    def events_added(self) -> str:
        """Counter of events ever appended: minus the stream's length, what was trimmed."""
        return f"{self.root}:events:added"

    @property
    def event_histories(self) -> str:
        """Hash: customer id -> JSON ``[[item ids, newest first], [days]]`` of the items
        their live order events bought; merged ahead of the stored history of any version,
        so the next answer knows the order before any retrain."""
        return f"{self.root}:events:histories"

    def event_order(self, order_id: str) -> str:
        """Set once per order id (with an expiry): a second event for it is a duplicate."""
        return f"{self.root}:events:order:{order_id}"

    @property
    def audit(self) -> str:
        """Stream of admin changes to the catalog and erasures (who, what, when), capped
        at ``AUDIT_MAX_ENTRIES`` entries, oldest trimmed first."""
        return f"{self.root}:audit"

    def model_prefix(self, version: str) -> str:
        return f"{self.root}:model:{version}:"

    @property
    def model_pattern(self) -> str:
        """``SCAN MATCH`` pattern of every key any version owns, finished or not: how a
        publish finds what a killed or stalled trainer left behind (on a cluster, scanned
        on every master: the buckets' keys too)."""
        escaped = re.sub(r"([\\*?\[\]])", r"\\\1", self.prefix)
        if self.cluster:
            return f"{{{escaped}[}}/]*:model:*"
        return f"{escaped}:model:*"

    def version_of(self, key: str) -> str | None:
        """The version a model key belongs to (None for a key outside the model space)."""
        head = f"{self.root}:model:"
        if self.cluster and key.startswith(f"{{{self.prefix}/"):
            close = key.find("}:model:")
            if close < 0:
                return None
            head = key[: close + len("}:model:")]
        if not key.startswith(head):
            return None
        version, sep, _ = key[len(head) :].partition(":")
        return version if sep else None

    def part(self, version: str, name: str) -> str:
        """The key of one manifest part (``items``, ``neighbours``, ...); on a cluster, a
        bucketed part's keys are ``bucket_key``'s."""
        if name not in MANIFEST_PARTS:
            raise ValueError(f"unknown model part {name!r}")
        if self.cluster and name in BUCKETED_PARTS:
            raise ValueError(f"{name!r} is split into buckets on a cluster: use bucket_key")
        return f"{self.model_prefix(version)}{name}"

    def _whole(self, version: str, name: str) -> str:
        if self.cluster:
            raise ValueError(f"{name!r} is split into buckets on a cluster: use field_key")
        return f"{self.model_prefix(version)}{name}"

    # -- buckets (one on a single node) ----------------------------------------------

    def bucket_of(self, member: str) -> int:
        """The bucket an item's or a customer's field lives in: stable, the same in the
        trainer and every worker."""
        if self.buckets == 1:
            return 0
        return zlib.crc32(member.encode()) % self.buckets

    def bucket_key(self, version: str, name: str, bucket: int) -> str:
        """The hash holding bucket ``bucket`` of a bucketed part."""
        if name not in BUCKETED_PARTS:
            raise ValueError(f"{name!r} is not a bucketed part")
        if not self.cluster:
            return f"{self.model_prefix(version)}{name}"
        tag = _bucket_tags(self.prefix, self.buckets)[bucket]
        return f"{{{tag}}}:model:{version}:{name}"

    def bucket_keys(self, version: str, name: str) -> list[str]:
        """Every hash of a bucketed part, bucket by bucket."""
        return [self.bucket_key(version, name, b) for b in range(self.buckets)]

    def field_key(self, version: str, name: str, member: str) -> str:
        """The hash holding ``member``'s field of a bucketed part."""
        return self.bucket_key(version, name, self.bucket_of(member))

    def by_bucket(self, members: Sequence[str]) -> dict[int, list[str]]:
        """``members`` grouped by bucket, each group in the order given."""
        out: dict[int, list[str]] = {}
        for m in members:
            out.setdefault(self.bucket_of(m), []).append(m)
        return out

    def entry_key(self, version: str, entry: ManifestEntry) -> str:
        """The key a manifest entry describes."""
        if entry.bucket is not None or entry.part in BUCKETED_PARTS:
            return self.bucket_key(version, entry.part, entry.bucket or 0)
        return self.part(version, entry.part)

    def verify_args(self, version: str, meta: dict[str, Any]) -> tuple[list[str], list[str]]:
        """KEYS and ARGV for ``verify`` in the switch and rollback scripts: every manifest
        key in the pointer's slot (on a single node, all of them; on a cluster, the
        version's own keys, the buckets being checked beside the script,
        ``outside_script``)."""
        entries = [e for e in manifest_of(meta) if e.bucket is None]
        keys = [self.entry_key(version, e) for e in entries]
        return keys, [e.spec for e in entries]

    def outside_script(self, meta: dict[str, Any]) -> list[ManifestEntry]:
        """Manifest entries in other slots than the pointer's (a cluster's buckets), which
        the switch script cannot read: checked just before it, under the same lock."""
        return [e for e in manifest_of(meta) if e.bucket is not None]

    def meta(self, version: str) -> str:
        """JSON: counts, parameters, timings; written last, so its presence means complete."""
        return f"{self.model_prefix(version)}meta"

    def items(self, version: str) -> str:
        """JSON array of item ids; a neighbour's index points into it."""
        return f"{self.model_prefix(version)}items"

    def popular(self, version: str) -> str:
        """Packed (index, score) pairs of the most popular items, for fallback answers."""
        return f"{self.model_prefix(version)}popular"

    def neighbours(self, version: str) -> str:
        """Hash: item id -> packed (index, score) pairs, best first."""
        return self._whole(version, "neighbours")

    def alternatives(self, version: str) -> str:
        """Hash: item id -> packed alternatives (bought by similar customers, seldom
        together), best first; the upsell slot picks the pricier ones."""
        return self._whole(version, "alternatives")

    def catalog(self, version: str) -> str:
        """JSON array aligned with ``items``: title, category, price, available, extras."""
        return f"{self.model_prefix(version)}catalog"

    def stock(self, version: str) -> str:
        """Hash: item id -> JSON ``{"available": bool, "price": float}`` set by the admin
        API; overrides the catalog until the next version (which re-reads the catalog)."""
        return f"{self.model_prefix(version)}stock"

    def stock_epoch(self, version: str) -> str:
        """Counter bumped on every stock change, read with each request's lists, so a
        change is seen by the next request without re-reading the stock hash each time."""
        return f"{self.model_prefix(version)}stock_epoch"

    def customers(self, version: str) -> str:
        """Hash: customer id -> JSON ``[[item ids, newest first], [days since 1970],
        [orders]]``, then (format 3) a NUL byte and the customer's packed picks
        (``codecs.Picks``, the trainer's ranked suggestions), read in the same read."""
        return self._whole(version, "customers")

    def customers_args(
        self,
        version: str,
        customer_ids: Sequence[str],
        pointer: str | None = None,
        with_stored: bool = True,
    ) -> tuple[list[str], list[str]]:
        """KEYS and ARGV of ``CUSTOMERS_SCRIPT``, every key declared: the version's
        pointer (``live`` unless told, ``candidate`` for an A/B test's other arm), its stock
        epoch, the event histories, the A/B test and, on a single node, the customers hash
        (``with_stored``; a cluster reads its buckets beside the script); then the version
        the caller believes is live and the ids."""
        keys = [pointer or self.live, self.stock_epoch(version), self.event_histories]
        keys.append(self.experiment)
        if with_stored and not self.cluster:
            keys.append(self.customers(version))
        return keys, [version, *customer_ids]

    def report(self, version: str) -> str:
        """JSON: the evaluation report the version was published with (optional)."""
        return f"{self.model_prefix(version)}report"

    def report_html(self, version: str) -> str:
        """The same report as one self-contained HTML page (optional)."""
        return f"{self.model_prefix(version)}report.html"

    def fetch_args(
        self,
        version: str,
        item_ids: Sequence[str],
        alternatives: bool = False,
        pointer: str | None = None,
    ) -> tuple[list[str], list[str]]:
        """KEYS and ARGV of ``FETCH_SCRIPT``, every key declared: the pointer it serves
        (``live`` unless told), the A/B test, the stock epoch of ``version`` (the version
        the caller believes is live) and, on a single node with ids, its complements and
        alternatives hashes (a cluster reads its buckets beside the script); then the
        version and the ids."""
        keys = [pointer or self.live, self.experiment, self.stock_epoch(version)]
        if item_ids and not self.cluster:
            keys.append(self.neighbours(version))
            if alternatives:
                keys.append(self.alternatives(version))
        return keys, [version, *item_ids]

    def model_keys(self, version: str) -> list[str]:
        """Every key a version can own (each bucket of a bucketed part)."""
        singles = [self.meta(version), self.items(version), self.popular(version)]
        singles += [self.catalog(version), self.stock(version), self.stock_epoch(version)]
        singles += [self.report(version), self.report_html(version)]
        return singles + [k for p in BUCKETED_PARTS for k in self.bucket_keys(version, p)]


@lru_cache(maxsize=64)
def _bucket_tags(prefix: str, buckets: int) -> tuple[str, ...]:
    """Hash tags for ``buckets`` buckets under ``prefix``, bucket ``b``'s in the ``b``-th
    equal share of the slots, so that any even split of the slots over masters gets its
    share of buckets (found by trying suffixes: about ``buckets`` tries each)."""
    tags = []
    for b in range(buckets):
        n = 0
        while True:
            tag = f"{prefix}/{b}.{n}"
            if key_slot(tag.encode()) * buckets // REDIS_CLUSTER_HASH_SLOTS == b:
                tags.append(tag)
                break
            n += 1
    return tuple(tags)


def new_version(now: datetime | None = None) -> str:
    """A sortable, unique version id such as ``20261122T184500Z-3f9a1c``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"
