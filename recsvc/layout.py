"""The Redis layout of a published model: key names, value encodings, the version pointer.

The trainer writes through this module and the service reads through it, so the two
cannot disagree on the format (gorse keeps its cache keys in one file for the same
reason). Everything a model version owns lives under ``{prefix}:model:{version}:``; the
single key ``{prefix}:live`` names the version being served, so switching models is one
atomic write and a reader never sees a half-written or mixed model.

Neighbour lists are packed little-endian ``(uint32 index, float32 score)`` pairs, one hash
field per item: 8 bytes a neighbour, decoded with one ``numpy.frombuffer`` and no parsing.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

FORMAT_VERSION = 1
"""Bumped whenever an encoding below changes; readers refuse a format they do not know."""

NEIGHBOUR_DTYPE = np.dtype([("index", "<u4"), ("score", "<f4")])

Blob = bytes
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


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
    def lock(self) -> str:
        """Publisher lock: a random token with an expiry, so a killed trainer frees it."""
        return f"{self.prefix}:lock"

    @property
    def versions(self) -> str:
        """A set of every version a trainer started writing, finished or not.

        A version is registered here before its first key is written, so the keys of a
        run that died halfway are found and deleted by the next publish.
        """
        return f"{self.prefix}:versions"

    def model_prefix(self, version: str) -> str:
        return f"{self.prefix}:model:{version}:"

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

    def customers(self, version: str) -> str:
        """Hash: customer id -> JSON ``[[item ids, newest first], [days since 1970]]``.

        JSON rather than packed indices so the fetch script can read the item ids and
        look their neighbour lists up in the same round trip.
        """
        return f"{self.model_prefix(version)}customers"

    def customer_fetch_args(self, customer_id: str, extra_items: Sequence[str] = ()) -> list[str]:
        """ARGV for ``CUSTOMER_FETCH_SCRIPT``."""
        head, tail = self.neighbours("\x00").split("\x00")
        customers_tail = self.customers("\x00").split("\x00")[1]
        return [head, customers_tail, tail, customer_id, *extra_items]

    def report(self, version: str) -> str:
        """JSON: the evaluation report the version was published with (optional)."""
        return f"{self.model_prefix(version)}report"

    def report_html(self, version: str) -> str:
        """The same report as one self-contained HTML page (optional)."""
        return f"{self.model_prefix(version)}report.html"

    def fetch_args(self, item_ids: Sequence[str]) -> list[str]:
        """ARGV for ``FETCH_SCRIPT``: the neighbours key around the version, then the ids."""
        head, tail = self.neighbours("\x00").split("\x00")
        return [head, tail, *item_ids]

    def model_keys(self, version: str) -> list[str]:
        return [
            self.meta(version),
            self.items(version),
            self.popular(version),
            self.neighbours(version),
            self.customers(version),
            self.report(version),
            self.report_html(version),
        ]


def new_version(now: datetime | None = None) -> str:
    """A sortable, unique version id such as ``20261122T184500Z-3f9a1c``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def encode_pairs(indices: npt.ArrayLike, scores: npt.ArrayLike) -> Blob:
    idx = np.asarray(indices)
    sc = np.asarray(scores)
    if idx.shape != sc.shape or idx.ndim != 1:
        raise ValueError("indices and scores must be 1-d arrays of the same length")
    if idx.size and (idx.min() < 0 or idx.max() > np.iinfo(np.uint32).max):
        raise ValueError("indices must fit in uint32")
    packed = np.empty(idx.size, dtype=NEIGHBOUR_DTYPE)
    packed["index"] = idx
    packed["score"] = sc
    return packed.tobytes()


def decode_pairs(blob: bytes) -> tuple[IntArray, FloatArray]:
    if len(blob) % NEIGHBOUR_DTYPE.itemsize:
        raise ValueError(f"packed pairs must be a multiple of {NEIGHBOUR_DTYPE.itemsize} bytes")
    packed = np.frombuffer(blob, dtype=NEIGHBOUR_DTYPE)
    return packed["index"].astype(np.int64), packed["score"].astype(np.float32)


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


# Reads the version pointer and the neighbour lists of the requested items in one round
# trip. Running as a script makes it atomic: the lists come from the version returned,
# even while a trainer switches the pointer or deletes an old version.
# KEYS[1] live pointer; ARGV[1] model key prefix up to the version; ARGV[2] hash suffix;
# ARGV[3..] item ids.
FETCH_SCRIPT = """
local version = redis.call('GET', KEYS[1])
if not version then return {false, {}} end
if #ARGV < 3 then return {version, {}} end
local key = ARGV[1] .. version .. ARGV[2]
return {version, redis.call('HMGET', key, unpack(ARGV, 3))}
"""

# A stored customer's history and its items' neighbour lists, in one round trip.
# KEYS[1] live pointer; ARGV[1] model key prefix up to the version; ARGV[2] customers
# hash suffix; ARGV[3] neighbours hash suffix; ARGV[4] customer id.
# Returns {version, history JSON or false, neighbour lists of the history's items}.
CUSTOMER_FETCH_SCRIPT = """
local version = redis.call('GET', KEYS[1])
if not version then return {false, false, {}} end
local history = redis.call('HGET', ARGV[1] .. version .. ARGV[2], ARGV[4])
if not history then return {version, false, {}} end
local items = cjson.decode(history)[1]
if #items == 0 then return {version, history, {}} end
return {version, history, redis.call('HMGET', ARGV[1] .. version .. ARGV[3], unpack(items))}
"""

# Makes a completely written version live, only while the caller still holds the lock:
# a trainer whose lock expired (it stalled past the expiry) must not switch.
# KEYS: lock, live, previous, meta of the new version; ARGV: token, new version.
SWITCH_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('LOCKLOST publisher lock lost before the switch')
end
if redis.call('EXISTS', KEYS[4]) == 0 then
  return redis.error_reply('INCOMPLETE new version has no metadata')
end
local old = redis.call('GET', KEYS[2])
if old then redis.call('SET', KEYS[3], old) end
redis.call('SET', KEYS[2], ARGV[2])
return old
"""

# Swaps live and previous, so a rollback can itself be undone by rolling back again.
# KEYS: lock, live, previous, meta of previous; ARGV: token.
ROLLBACK_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('LOCKLOST publisher lock lost before the rollback')
end
local prev = redis.call('GET', KEYS[3])
if not prev then return redis.error_reply('NOPREVIOUS no previous version to roll back to') end
if redis.call('EXISTS', KEYS[4]) == 0 then
  return redis.error_reply('INCOMPLETE previous version is gone')
end
local live = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[2], prev)
if live then redis.call('SET', KEYS[3], live) else redis.call('DEL', KEYS[3]) end
return prev
"""

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
