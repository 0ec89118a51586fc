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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

FORMAT_VERSION = 2
"""Bumped whenever an encoding below changes; readers refuse a format they do not know.
2: neighbour lists carry an evidence count; catalog, alternatives and stock keys."""

MAX_ITEM_ID_LENGTH = 64
MAX_CUSTOMER_ID_LENGTH = 128

ID_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
"""What an item or customer id may be, in the API and in what the trainer publishes
(one rule for both: a published id is always one the API accepts)."""


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
ERASED_HISTORY = b"[[],[]]"
"""What an erased customer's stored history becomes: empty, the hash keeping its size, so
every version's manifest (and with it readiness and rollback) still holds."""


@dataclass(frozen=True)
class Layout:
    """Key names under one prefix; tests give each case its own prefix on a shared server."""

    prefix: str = "recsvc"

    @property
    def live(self) -> str:
        """The version pointer: a plain string key holding the live version id."""
        return f"{self.prefix}:live"

    @property
    def previous(self) -> str:
        """The version that was live before the current one, kept for rollback."""
        return f"{self.prefix}:previous"

    @property
    def candidate(self) -> str:
        """The candidate pointer of an A/B test: a version served beside the live one to
        a share of traffic (``experiment``); a plain string key like ``live``, so the same
        fetch script reads either."""
        return f"{self.prefix}:candidate"

    @property
    def experiment(self) -> str:
        """JSON of the A/B test in force (``Experiment``): its id, the candidate version,
        the share of traffic it gets, when it started, the live version it started
        against. Written and deleted with ``candidate``, in one script."""
        return f"{self.prefix}:experiment"

    @property
    def experiments(self) -> str:
        """Stream of ended A/B tests (promoted or aborted), for the sales report."""
        return f"{self.prefix}:experiments"

    @property
    def sales_total(self) -> str:
        """Hash: ``version|arm|slot|measure`` -> attributed orders, lines, revenue and
        squared revenue per order (``slot`` ``-`` and measure ``answers``: answers served),
        ever; what ``/metrics`` exposes."""
        return f"{self.prefix}:sales:total"

    def sales_day(self, day: str) -> str:
        """The same counts for one UTC day (``YYYY-MM-DD``), kept ``SALES_DAYS_KEPT``
        days, for ``recsvc report sales --since``."""
        return f"{self.prefix}:sales:day:{day}"

    @property
    def lock(self) -> str:
        """Publisher lock: a random token with an expiry, so a killed trainer frees it."""
        return f"{self.prefix}:lock"

    @property
    def versions(self) -> str:
        """Legacy: a set of versions, replaced by scanning ``model_pattern``; the next
        publish deletes it."""
        return f"{self.prefix}:versions"

    @property
    def catalog_items(self) -> str:
        """Hash: item id -> JSON catalog facts (``title``, ``category``, ``price``,
        ``available``, extras) added or updated by the admin API between trainings. Kept
        across versions: an item a version does not know is served as a new item of its
        category; one it knows has its facts overridden."""
        return f"{self.prefix}:catalog:items"

    @property
    def catalog_deleted(self) -> str:
        """Set of item ids deleted by the admin API: never suggested, by any version, until
        added again."""
        return f"{self.prefix}:catalog:deleted"

    @property
    def erased(self) -> str:
        """Set of customer ids whose stored history was erased on request: every stored
        version holds an empty history for them, and no later publish stores one."""
        return f"{self.prefix}:erased"

    @property
    def events(self) -> str:
        """Stream of live order events (``POST /v1/events/orders``), capped at the
        service's ``events_max`` entries, oldest trimmed first; ``train --include-events``
        folds them into the next training."""
        return f"{self.prefix}:events"

    @property
    def events_added(self) -> str:
        """Counter of events ever appended: minus the stream's length, what was trimmed."""
        return f"{self.prefix}:events:added"

    @property
    def event_histories(self) -> str:
        """Hash: customer id -> JSON ``[[item ids, newest first], [days]]`` of the items
        their live order events bought; merged ahead of the stored history of any version,
        so the next answer knows the order before any retrain."""
        return f"{self.prefix}:events:histories"

    def event_order(self, order_id: str) -> str:
        """Set once per order id (with an expiry): a second event for it is a duplicate."""
        return f"{self.prefix}:events:order:{order_id}"

    @property
    def audit(self) -> str:
        """Stream of admin changes to the catalog and erasures (who, what, when), capped
        at ``AUDIT_MAX_ENTRIES`` entries, oldest trimmed first."""
        return f"{self.prefix}:audit"

    def model_prefix(self, version: str) -> str:
        return f"{self.prefix}:model:{version}:"

    @property
    def model_pattern(self) -> str:
        """``SCAN MATCH`` pattern of every key any version owns, finished or not: how a
        publish finds what a killed or stalled trainer left behind."""
        escaped = re.sub(r"([\\*?\[\]])", r"\\\1", self.prefix)
        return f"{escaped}:model:*"

    def version_of(self, key: str) -> str | None:
        """The version a model key belongs to (None for a key outside the model space)."""
        head = f"{self.prefix}:model:"
        if not key.startswith(head):
            return None
        version, sep, _ = key[len(head) :].partition(":")
        return version if sep else None

    def part(self, version: str, name: str) -> str:
        """The key of one manifest part (``items``, ``neighbours``, ...)."""
        if name not in MANIFEST_PARTS:
            raise ValueError(f"unknown model part {name!r}")
        return f"{self.model_prefix(version)}{name}"

    def verify_args(self, version: str, meta: dict[str, Any]) -> tuple[list[str], list[str]]:
        """KEYS and ARGV for ``verify`` in the switch and rollback scripts."""
        entries = manifest_of(meta)
        keys = [self.part(version, e.part) for e in entries]
        return keys, [e.spec for e in entries]

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
        return f"{self.model_prefix(version)}neighbours"

    def alternatives(self, version: str) -> str:
        """Hash: item id -> packed alternatives (bought by similar customers, seldom
        together), best first; the upsell slot picks the pricier ones."""
        return f"{self.model_prefix(version)}alternatives"

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
        return f"{self.model_prefix(version)}customers"

    def _suffix(self, key: str) -> str:
        return key.split("\x00")[1]

    def customers_args(
        self, version: str, customer_ids: Sequence[str], pointer: str | None = None
    ) -> list[str]:
        """KEYS and ARGV of ``CUSTOMERS_SCRIPT``: the version's pointer (``live`` unless
        told, ``candidate`` for an A/B test's other arm), stock epoch, customers hash and
        the event histories (every key declared), then the version and the ids."""
        keys = [pointer or self.live, self.stock_epoch(version), self.customers(version)]
        return [*keys, self.event_histories, self.experiment, version, *customer_ids]

    def report(self, version: str) -> str:
        """JSON: the evaluation report the version was published with (optional)."""
        return f"{self.model_prefix(version)}report"

    def report_html(self, version: str) -> str:
        """The same report as one self-contained HTML page (optional)."""
        return f"{self.model_prefix(version)}report.html"

    def fetch_keys(self, pointer: str | None = None) -> list[str]:
        """KEYS of ``FETCH_SCRIPT``: the pointer it serves (``live`` unless told) and the
        A/B test in force."""
        return [pointer or self.live, self.experiment]

    def fetch_args(self, item_ids: Sequence[str], alternatives: bool = False) -> list[str]:
        """ARGV for ``FETCH_SCRIPT``: key parts around the version, then the ids."""
        v = "\x00"
        return [
            self.model_prefix(v).split(v)[0],
            self._suffix(self.neighbours(v)),
            self._suffix(self.alternatives(v)) if alternatives else "",
            self._suffix(self.stock_epoch(v)),
            *item_ids,
        ]

    def model_keys(self, version: str) -> list[str]:
        return [
            self.meta(version),
            self.items(version),
            self.popular(version),
            self.neighbours(version),
            self.alternatives(version),
            self.catalog(version),
            self.stock(version),
            self.stock_epoch(version),
            self.customers(version),
            self.report(version),
            self.report_html(version),
        ]


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

    @property
    def spec(self) -> str:
        return f"{self.kind}:{'*' if self.size is None else self.size}"

    def as_json(self) -> list[Any]:
        return [self.part, self.kind, self.size]


def manifest_of(meta: dict[str, Any]) -> list[ManifestEntry]:
    """The keys a complete version has, from its metadata."""
    raw = meta.get("manifest")
    if raw is None:
        kinds = {"neighbours": "hash"}
        return [ManifestEntry(p, kinds.get(p, "string"), None) for p in REQUIRED_PARTS]
    entries = []
    for part, kind, size in raw:
        if part not in MANIFEST_PARTS or kind not in ("string", "hash"):
            raise ValueError(f"bad manifest entry {[part, kind, size]!r}")
        entries.append(ManifestEntry(str(part), str(kind), int(size)))
    return entries


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


# Reads the version pointer, the stock epoch and the lists of the requested items in one
# round trip, with the A/B test in force (so a request needs no read of its own to learn
# its arm). Running as a script makes it atomic: the lists come from the version
# returned, even while a trainer switches the pointer or deletes an old version.
# KEYS[1] live (or candidate) pointer; KEYS[2] the A/B test; ARGV[1] key prefix up to the
# version; ARGV[2] neighbours suffix; ARGV[3] alternatives suffix ('' for none); ARGV[4]
# stock epoch suffix; ARGV[5..] ids.
FETCH_SCRIPT = """
local version = redis.call('GET', KEYS[1])
local test = redis.call('GET', KEYS[2])
if not version then return {false, false, {}, {}, test} end
local base = ARGV[1] .. version
local epoch = redis.call('GET', base .. ARGV[4])
if #ARGV < 5 then return {version, epoch, {}, {}, test} end
local ids = {unpack(ARGV, 5)}
local alts = {}
if ARGV[3] ~= '' then alts = redis.call('HMGET', base .. ARGV[3], unpack(ids)) end
return {version, epoch, redis.call('HMGET', base .. ARGV[2], unpack(ids)), alts, test}
"""

# A stored customer's history and its items' neighbour lists, in one round trip.
# KEYS[1] live pointer; ARGV[1] key prefix up to the version; ARGV[2] customers suffix;
# ARGV[3] neighbours suffix; ARGV[4] stock epoch suffix; ARGV[5] customer id; ARGV[6] '1'
# for the lists too, '0' for the history only.
# Returns {version, epoch, history JSON or false, neighbour lists of the history's items}.
CUSTOMERS_SCRIPT = """
local live = redis.call('GET', KEYS[1])
local test = redis.call('GET', KEYS[5])
if live ~= ARGV[1] then return {live or false, test} end
local epoch = redis.call('GET', KEYS[2])
if #ARGV == 1 then return {live, epoch, {}, {}, test} end
return {live, epoch, redis.call('HMGET', KEYS[3], unpack(ARGV, 2)),
        redis.call('HMGET', KEYS[4], unpack(ARGV, 2)), test}
"""
"""Stored histories of many customers from the version a reader believes is live, with
its stock epoch, what live order events added to each and the A/B test in force, in one
atomic step: ``{live, test}`` alone when another version is live (the reader switches and
asks again). Keys: the pointer, the epoch, the customers hash, the event histories, the
A/B test, all declared (``customers_args``)."""

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
