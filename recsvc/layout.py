"""The Redis layout of a published model: key names, value encodings, the version pointer.

The trainer writes through this module and the service reads through it, so the two
cannot disagree on the format (gorse keeps its cache keys in one file for the same
reason). Everything a model version owns lives under ``{prefix}:model:{version}:``; the
single key ``{prefix}:live`` names the version being served, so switching models is one
atomic write and a reader never sees a half-written or mixed model.

Neighbour lists are packed little-endian ``(uint32 index, float32 score, uint32 count)``
triples, one hash field per item: 12 bytes a neighbour, decoded with one
``numpy.frombuffer`` and no parsing.
"""

from __future__ import annotations

import re
import secrets
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NotRequired, TypedDict

import numpy as np
import numpy.typing as npt
import orjson
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

FORMAT_VERSION = 2
"""Bumped whenever an encoding below changes; readers refuse a format they do not know.
2: neighbour lists carry an evidence count; catalog, alternatives and stock keys."""

MAX_ITEM_ID_LENGTH = 64
MAX_CUSTOMER_ID_LENGTH = 128

ID_PATTERN = (
    r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*[^\s\x00-\x1f\x7f-\x9f\u2028\u2029]"
    r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
)
"""What an item or customer id may be, in the API and in what the trainer publishes
(one rule for both: a published id is always one the API accepts): something besides
white space, and no control character (C0, DEL, C1: NUL and U+0085 among them) nor a
Unicode line or paragraph separator (U+2028, U+2029)."""


def valid_id(value: str, max_length: int) -> bool:
    """Whether ``value`` is an id the API accepts (``ID_PATTERN``, within ``max_length``)."""
    return 0 < len(value) <= max_length and re.match(ID_PATTERN, value) is not None


NEIGHBOUR_DTYPE = np.dtype([("index", "<u4"), ("score", "<f4"), ("count", "<u4")])
"""One neighbour: its item index, its weight, and the evidence behind it (orders bought
together for a complement, customers shared for an alternative)."""

Blob = bytes
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


SALES_DAYS_KEPT = 400
"""Days the per-day sales counts are kept (a year and a season to compare with)."""
EXPERIMENTS_KEPT = 1_000
"""Ended A/B tests the ``experiments`` stream keeps."""
AUDIT_MAX_ENTRIES = 100_000
"""Entries the audit stream keeps (about 150 bytes each)."""
ERASED_HISTORY = b"[[],[]]"  # encode_history([], [])
"""What an erased customer's stored history becomes: empty, the hash keeping its size, so
every version's manifest (and with it readiness and rollback) still holds."""


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
        """Hash: customer id -> JSON ``[[item ids, newest first], [days since 1970]]``.

        JSON rather than packed indices so the fetch script can read the item ids and
        look their neighbour lists up in the same round trip.
        """
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


MANIFEST_PARTS = (
    "items",
    "popular",
    "catalog",
    "neighbours",
    "alternatives",
    "customers",
    "report",
    "report.html",
)
"""The keys a version is written with, in the order they are written; ``meta`` (last)
lists each with its size. Stock keys change after publishing and are not in it."""

REQUIRED_PARTS = ("items", "popular", "neighbours")
"""What a version written before manifests must have to be served."""


@dataclass(frozen=True)
class ManifestEntry:
    part: str
    kind: str
    """``string`` (size: bytes, ``STRLEN``) or ``hash`` (size: fields, ``HLEN``)."""
    size: int | None
    """None: any non-empty size (a version written before manifests)."""
    bucket: int | None = None
    """The bucket of a bucketed part on a cluster (None: the part's one key)."""

    @property
    def spec(self) -> str:
        return f"{self.kind}:{'*' if self.size is None else self.size}"

    def as_json(self) -> list[Any]:
        head = [self.part, self.kind, self.size]
        return head if self.bucket is None else [*head, self.bucket]


def manifest_of(meta: dict[str, Any]) -> list[ManifestEntry]:
    """The keys a complete version has, from its metadata."""
    raw = meta.get("manifest")
    if raw is None:
        kinds = {"neighbours": "hash"}
        return [ManifestEntry(p, kinds.get(p, "string"), None) for p in REQUIRED_PARTS]
    entries = []
    for entry in raw:
        part, kind, size, *rest = entry
        if part not in MANIFEST_PARTS or kind not in ("string", "hash") or len(rest) > 1:
            raise ValueError(f"bad manifest entry {entry!r}")
        bucket = int(rest[0]) if rest else None
        entries.append(ManifestEntry(str(part), str(kind), int(size), bucket))
    return entries


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


def encode_pairs(
    indices: npt.ArrayLike, scores: npt.ArrayLike, counts: npt.ArrayLike | None = None
) -> Blob:
    idx = np.asarray(indices)
    sc = np.asarray(scores)
    cnt = np.zeros(idx.shape, np.int64) if counts is None else np.asarray(counts)
    if idx.shape != sc.shape or idx.ndim != 1:
        raise ValueError("indices and scores must be 1-d arrays of the same length")
    if idx.size and (idx.min() < 0 or idx.max() > np.iinfo(np.uint32).max):
        raise ValueError("indices must fit in uint32")
    packed = np.empty(idx.size, dtype=NEIGHBOUR_DTYPE)
    packed["index"] = idx
    packed["score"] = sc
    packed["count"] = np.clip(cnt, 0, np.iinfo(np.uint32).max)
    return packed.tobytes()


def decode_lists(blob: bytes) -> tuple[IntArray, FloatArray, IntArray]:
    """Indices, scores and evidence counts of one packed list."""
    if len(blob) % NEIGHBOUR_DTYPE.itemsize:
        raise ValueError(f"packed lists must be a multiple of {NEIGHBOUR_DTYPE.itemsize} bytes")
    packed = np.frombuffer(blob, dtype=NEIGHBOUR_DTYPE)
    return (
        packed["index"].astype(np.int64),
        packed["score"].astype(np.float32),
        packed["count"].astype(np.int64),
    )


def decode_pairs(blob: bytes) -> tuple[IntArray, FloatArray]:
    idx, sc, _ = decode_lists(blob)
    return idx, sc


# -- the stored values ---------------------------------------------------------------


class CatalogFacts(TypedDict, total=False):
    """One item's entry in ``catalog`` (a JSON array aligned with ``items``) and in
    ``catalog_items`` (the admin API's additions, which also carry ``added_at``)."""

    title: str
    category: str
    price: float
    available: bool
    margin: float
    brand: str
    image_url: str
    url: str
    added_at: float


class StockChange(TypedDict, total=False):
    """One item's field in ``stock``: what the admin API changed since the publish."""

    available: bool
    price: float


class Serving(TypedDict):
    """``meta["serving"]``: the parameters the service ranks a version's lists with."""

    history_items: int
    """Distinct items stored per customer (and kept from live order events)."""
    repurchase_weight: float
    """A strong neighbour's weight (the 90th percentile of first complements)."""
    repurchase_bonus: float
    """What an item bought before adds, in the same units."""
    history_recipe: NotRequired[str]
    """How a customer's suggestions (stored customers, histories) are ranked: ``model``
    (the lists, as trained) or ``popular`` (best-sellers, for a store where they beat the
    model on the trainer's validation window). Missing: ``model``."""


HISTORY_RECIPES = ("model", "popular")
"""The recipes a version may serve a customer's suggestions with (``Serving``)."""


def encode_history(
    items: Sequence[str], days: Sequence[int], counts: Sequence[int] | None = None
) -> Blob:
    """A stored history (``customers`` field, ``event_histories`` field): JSON
    ``[[item ids, newest first], [day of each one's latest purchase, since 1970],
    [orders each was bought in]]``, -1 for an undated purchase. Without counts (live order
    events, histories of older trainers) each item counts once."""
    if counts is None:
        return orjson.dumps([list(items), [int(d) for d in days]])
    return orjson.dumps([list(items), [int(d) for d in days], [int(c) for c in counts]])


def decode_history(blob: bytes) -> tuple[list[str], list[int], list[int]]:
    parts = orjson.loads(blob)
    items, days = parts[0], parts[1]
    counts = parts[2] if len(parts) > 2 else [1] * len(items)
    if not len(items) == len(days) == len(counts):
        raise ValueError("a stored history's items, days and counts differ in length")
    return [str(i) for i in items], [int(d) for d in days], [max(int(c), 1) for c in counts]


def encode_json(value: Any) -> Blob:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def decode_json(blob: bytes) -> Any:
    return orjson.loads(blob)


class UnknownFormatError(ValueError):
    """The model was written by a newer trainer than this reader understands."""


def check_format(meta: dict[str, Any]) -> None:
    found = meta.get("format")
    if found != FORMAT_VERSION:
        raise UnknownFormatError(f"model format {found!r}, this build reads {FORMAT_VERSION}")


# Reads the version pointer, the A/B test in force (so a request needs no read of its own
# to learn its arm), the stock epoch and the lists of the requested items of the version
# the caller believes is live, in one round trip and one atomic step: the lists come from
# the version returned, even while a trainer switches the pointer or deletes an old
# version. Every key is declared (a cluster runs the same script on the pointer's slot,
# with the lists read from their buckets beside it).
# KEYS: pointer, A/B test, stock epoch of ARGV[1], [complements, [alternatives]] of
# ARGV[1]; ARGV[1] the believed version, ARGV[2..] item ids.
# Returns {live, epoch, complements, alternatives, test, 1}, or {live or false, false, {},
# {}, test, 0} when another version is live (the caller asks again for that one).
FETCH_SCRIPT = """
local live = redis.call('GET', KEYS[1])
local test = redis.call('GET', KEYS[2])
if live ~= ARGV[1] then return {live or false, false, {}, {}, test, 0} end
local epoch = redis.call('GET', KEYS[3])
local comp, alts = {}, {}
if #ARGV > 1 and #KEYS > 3 then
  comp = redis.call('HMGET', KEYS[4], unpack(ARGV, 2))
  if #KEYS > 4 then alts = redis.call('HMGET', KEYS[5], unpack(ARGV, 2)) end
end
return {live, epoch, comp, alts, test, 1}
"""

CUSTOMERS_SCRIPT = """
local live = redis.call('GET', KEYS[1])
local test = redis.call('GET', KEYS[4])
if live ~= ARGV[1] then return {live or false, false, {}, {}, test, 0} end
local epoch = redis.call('GET', KEYS[2])
if #ARGV == 1 then return {live, epoch, {}, {}, test, 1} end
local stored = {}
if #KEYS > 4 then stored = redis.call('HMGET', KEYS[5], unpack(ARGV, 2)) end
return {live, epoch, stored, redis.call('HMGET', KEYS[3], unpack(ARGV, 2)), test, 1}
"""
"""Stored histories of many customers from the version a reader believes is live, with
its stock epoch, what live order events added to each and the A/B test in force, in one
atomic step; the same shape as ``FETCH_SCRIPT``'s reply (``{live, false, {}, {}, test,
0}`` when another version is live: the reader asks again). Keys: the pointer, the epoch,
the event histories, the A/B test and, on a single node, the customers hash, all
declared (``customers_args``)."""

ORDER_EVENT_SCRIPT = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return {0, 0, 0} end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[6])
local added = redis.call('INCR', KEYS[4])
local credit = cjson.decode(ARGV[7])
for _, c in ipairs(credit) do
  if not c[3] then redis.call('HINCRBYFLOAT', KEYS[5], c[1], c[2]) end
  redis.call('HINCRBYFLOAT', KEYS[6], c[1], c[2])
end
if #credit > 0 then redis.call('EXPIRE', KEYS[6], ARGV[8]) end
local items, days, seen = {}, {}, {}
for i = 9, #ARGV do
  if not seen[ARGV[i]] then
    seen[ARGV[i]] = true
    items[#items + 1] = ARGV[i]
    days[#days + 1] = tonumber(ARGV[4])
  end
end
local old = redis.call('HGET', KEYS[3], ARGV[3])
if old then
  local before = cjson.decode(old)
  for i, item in ipairs(before[1]) do
    if not seen[item] and #items < tonumber(ARGV[5]) then
      seen[item] = true
      items[#items + 1] = item
      days[#days + 1] = before[2][i]
    end
  end
end
redis.call('HSET', KEYS[3], ARGV[3], cjson.encode({items, days}))
return {1, added, redis.call('XLEN', KEYS[2])}
"""
"""One live order event, once: the order id's marker (set with an expiry, or a duplicate:
``{0, 0, 0}``), the event on the capped stream, what it credits to the answers it came
from (attribution: ``[[sales field, amount], ...]`` added to the total and the day's
counts; ``[field, amount, true]`` to the day's only), and its items ahead of the
customer's event history (distinct, newest first, at most ARGV[5]). Returns ``{1, events
ever added, events kept}``. KEYS: marker, stream, event histories, added counter, sales
total, the day's sales; ARGV: marker seconds, stream cap, customer, day, history cap,
the event's JSON, the credit JSON, the day key's expiry in seconds, item ids."""

# What every script that moves a pointer checks first, and the refusal it returns:
# - ``lock_lost(what)``: the caller (KEYS[1] lock, ARGV[1] token) no longer holds the lock;
# - ``incomplete(name, k, a)``: the version whose metadata is KEYS[k] is not whole: no
#   metadata, or a manifest key (KEYS[k + 1..], specs ARGV[a..]: "hash:120",
#   "string:4096", "string:*" for any non-empty size) missing or not the size written.
_GUARDS_LUA = """
local function lock_lost(what)
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return redis.error_reply('LOCKLOST publisher lock lost before the ' .. what)
  end
end
local function incomplete(name, k, a)
  if redis.call('EXISTS', KEYS[k]) == 0 then
    return redis.error_reply('INCOMPLETE ' .. name .. ' has no metadata')
  end
  local problems = {}
  for i = k + 1, #KEYS do
    local kind, size = string.match(ARGV[a + i - k - 1], '^(%a+):(.+)$')
    local found = redis.call('TYPE', KEYS[i])['ok']
    local got = 0
    if found == 'hash' then got = redis.call('HLEN', KEYS[i])
    elseif found == 'string' then got = redis.call('STRLEN', KEYS[i]) end
    if found == 'none' then
      table.insert(problems, KEYS[i] .. ' is missing')
    elseif found ~= kind then
      table.insert(problems, KEYS[i] .. ' is a ' .. found .. ', not a ' .. kind)
    elseif (size == '*' and got == 0) or (size ~= '*' and got ~= tonumber(size)) then
      table.insert(problems, KEYS[i] .. ' has size ' .. got .. ', the manifest says ' .. size)
    end
  end
  if #problems > 0 then
    return redis.error_reply('INCOMPLETE ' .. table.concat(problems, '; '))
  end
end
"""

# Makes a completely written version live, only while the caller still holds the lock
# (a trainer whose lock expired must not switch) and only if every key its manifest lists
# is there with the size it was written with.
# KEYS: lock, live, previous, meta of the new version, its manifest keys;
# ARGV: token, new version, the manifest's specs.
SWITCH_SCRIPT = (
    _GUARDS_LUA
    + """
local refused = lock_lost('switch') or incomplete('new version', 4, 3)
if refused then return refused end
local old = redis.call('GET', KEYS[2])
if old then redis.call('SET', KEYS[3], old) end
redis.call('SET', KEYS[2], ARGV[2])
return old
"""
)

# Swaps live and previous, so a rollback can itself be undone by rolling back again; only
# to a previous version that is still complete (an evicting Redis may have taken a key).
# KEYS: lock, live, previous, meta of previous, its manifest keys;
# ARGV: token, the previous version as the caller read it, the manifest's specs.
ROLLBACK_SCRIPT = (
    _GUARDS_LUA
    + """
local refused = lock_lost('rollback')
if refused then return refused end
local prev = redis.call('GET', KEYS[3])
if not prev then return redis.error_reply('NOPREVIOUS no previous version to roll back to') end
if prev ~= ARGV[2] then
  return redis.error_reply('CHANGED the previous version changed; try again')
end
refused = incomplete('previous version ' .. prev, 4, 3)
if refused then return refused end
local live = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[2], prev)
if live then redis.call('SET', KEYS[3], live) else redis.call('DEL', KEYS[3]) end
return prev
"""
)

# Publishes a completely written version as the candidate of an A/B test, beside the live
# one (which stays live): same lock and manifest checks as the switch.
# KEYS: lock, live, candidate, experiment, meta of the new version, its manifest keys;
# ARGV: token, new version, the experiment's JSON, the manifest's specs.
CANDIDATE_SCRIPT = (
    _GUARDS_LUA
    + """
local refused = lock_lost('switch')
if refused then return refused end
if not redis.call('GET', KEYS[2]) then
  return redis.error_reply('NOLIVE no live version to test a candidate against')
end
refused = incomplete('new version', 5, 4)
if refused then return refused end
local old = redis.call('GET', KEYS[3])
redis.call('SET', KEYS[3], ARGV[2])
redis.call('SET', KEYS[4], ARGV[3])
return old
"""
)

# Ends an A/B test by making its candidate live (the live one becomes previous, the
# rollback target), only if the candidate is still complete.
# KEYS: lock, live, previous, candidate, experiment, ended experiments stream, meta of the
# candidate, its manifest keys; ARGV: token, the candidate as the caller read it, the
# ended experiment's JSON, the stream's cap, the manifest's specs.
PROMOTE_SCRIPT = (
    _GUARDS_LUA
    + """
local refused = lock_lost('promotion')
if refused then return refused end
local cand = redis.call('GET', KEYS[4])
if not cand then return redis.error_reply('NOCANDIDATE no A/B test is running') end
if cand ~= ARGV[2] then return redis.error_reply('CHANGED the candidate changed; try again') end
refused = incomplete('candidate ' .. cand, 7, 5)
if refused then return refused end
local old = redis.call('GET', KEYS[2])
if old then redis.call('SET', KEYS[3], old) end
redis.call('SET', KEYS[2], cand)
redis.call('DEL', KEYS[4], KEYS[5])
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[4], '*', 'experiment', ARGV[3])
return old
"""
)

# Ends an A/B test without changing the live version: the candidate stops being served.
# KEYS: lock, candidate, experiment, ended experiments stream; ARGV: token, the ended
# experiment's JSON, the stream's cap.
ABORT_SCRIPT = (
    _GUARDS_LUA
    + """
local refused = lock_lost('abort')
if refused then return refused end
local cand = redis.call('GET', KEYS[2])
if not cand then return redis.error_reply('NOCANDIDATE no A/B test is running') end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'experiment', ARGV[2])
return cand
"""
)

# KEYS[1] lock; ARGV: token, expiry in ms. Extends the lock only for its holder.
RENEW_LOCK_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS[1] lock; ARGV[1] token. Deletes the lock only for its holder.
RELEASE_LOCK_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
