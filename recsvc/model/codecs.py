"""How a version's values are encoded.

Neighbour lists are packed little-endian ``(uint32 index, float32 score, uint32 count)``
triples, one hash field per item: 12 bytes a neighbour, decoded with one
``numpy.frombuffer`` and no parsing. Stored histories are JSON, followed (format 3) by a
NUL byte and the customer's precomputed suggestions (``Picks``, packed columns, deflated):
JSON never holds a raw NUL, so one ``partition`` splits them. Everything else is JSON."""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

NEIGHBOUR_DTYPE = np.dtype([("index", "<u4"), ("score", "<f4"), ("count", "<u4")])
"""One neighbour: its item index, its weight, and the evidence behind it (orders bought
together for a complement, customers shared for an alternative)."""


Blob = bytes


IntArray = npt.NDArray[np.int64]


FloatArray = npt.NDArray[np.float32]


ERASED_HISTORY = b"[[],[]]"  # encode_history([], [])
"""What an erased customer's stored history becomes: empty, the hash keeping its size, so
every version's manifest (and with it readiness and rollback) still holds."""


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
    """A stored history's items, days and counts (any picks after it are left aside)."""
    parts = orjson.loads(split_history(blob)[0])
    items, days = parts[0], parts[1]
    counts = parts[2] if len(parts) > 2 else [1] * len(items)
    if not len(items) == len(days) == len(counts):
        raise ValueError("a stored history's items, days and counts differ in length")
    # The trainers write strings and integers: checked at C speed, converted otherwise.
    if not _all_of(items, str):
        items = [str(i) for i in items]
    if not _all_of(days, int):
        days = [int(d) for d in days]
    if not _all_of(counts, int) or min(counts, default=1) < 1:
        counts = [max(int(c), 1) for c in counts]
    return items, days, counts


def _all_of(values: list[Any], kind: type) -> bool:
    return set(map(type, values)) <= {kind}


PICKS_SEPARATOR = b"\x00"
"""Between a stored history's JSON and its packed picks."""

_PICKS_HEADER = struct.Struct("<BBBBH")
"""Flags, index width, evidence width, position width (bytes), entries."""

_COMPLETE = 1
_DEFLATED = 2


@dataclass(frozen=True)
class Picks:
    """A stored customer's suggestions as the trainer ranked them, best first: each
    candidate's item index (``indices``, an array: the rules' masks index by it), and as
    plain lists, its score (at ``score_precision``, as the service renders a stored
    customer's scores), the positions in the
    customer's stored history of the seeds behind it (``because``) and its evidence.

    ``complete``: these are all the candidates the history has (fewer than the trainer's
    N), so a filter that leaves too few needs no online ranking: popular items fill."""

    indices: IntArray
    scores: list[float]
    because_counts: list[int]
    because_positions: list[int]
    """Every entry's seed positions, one after another (``because_counts`` of each)."""
    evidence: list[int]
    complete: bool

    def __len__(self) -> int:
        return int(self.indices.size)

    def because(self, entry: int) -> list[int]:
        """The history positions behind one entry, strongest first."""
        starts = self.starts()
        return self.because_positions[starts[entry] : starts[entry + 1]]

    def starts(self) -> list[int]:
        """Where each entry's positions start in ``because_positions`` (and the end)."""
        starts: list[int] | None = self.__dict__.get("_starts_cache")
        if starts is None:
            starts = list(itertools.accumulate(self.because_counts, initial=0))
            object.__setattr__(self, "_starts_cache", starts)
        return starts


def _width(top: int) -> int:
    for width in (1, 2, 3, 4):
        if top < 1 << (8 * width):
            return width
    raise ValueError("picks values must fit in uint32")


def _planes(values: npt.NDArray[Any], width: int) -> bytes:
    """Little-endian bytes, byte planes one after another (the low bytes of every value,
    then the next): scores best first and small indices share their high bytes, which
    then deflate to little."""
    raw = np.ascontiguousarray(values.astype("<u4")).view(np.uint8).reshape(-1, 4)
    return np.ascontiguousarray(raw[:, :width].T).tobytes()


def _unplanes(body: bytes, offset: int, n: int, width: int) -> npt.NDArray[Any]:
    """``_planes`` undone: n unsigned values (of that dtype width; 3 bytes widen to 4)."""
    planes = np.frombuffer(body, np.uint8, n * width, offset).reshape(width, n)
    if width == 1:
        low: npt.NDArray[Any] = planes[0]
        return low
    if width == 3:
        wide = np.zeros((n, 4), np.uint8)
        wide[:, :3] = planes.T
        return wide.view("<u4").ravel()
    return np.ascontiguousarray(planes.T).view(f"<u{width}").ravel()


def _score_bits(scores: npt.ArrayLike) -> npt.NDArray[np.uint32]:
    """The top 16 bits of each float32 (bfloat16), rounded to nearest, ties to even."""
    u = np.asarray(scores, np.float32).reshape(-1).view("<u4").astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint32)


def score_precision(scores: npt.ArrayLike) -> list[float]:
    """Scores as a stored customer's answer gives them, whether read from the picks or
    ranked online: float32 rounded to its top 16 bits (bfloat16: about three significant
    digits), what the picks keep. Two bytes a score instead of four is what keeps a
    customer's 50 picks under 400 bytes of Redis on 68k items."""
    wide = (_score_bits(scores) << 16).astype("<u4")
    return [float(f"{v:.3g}") for v in wide.view("<f4").tolist()]


def encode_picks(
    indices: npt.ArrayLike,
    scores: npt.ArrayLike,
    because: Sequence[Sequence[int]],
    evidence: npt.ArrayLike,
    complete: bool,
) -> Blob:
    """Packs a customer's picks: byte-planed columns (indices, scores in 16 bits
    (``score_precision``), seed counts, seed positions, evidence), deflated when that is
    smaller."""
    idx = np.asarray(indices, np.int64)
    sc = np.asarray(scores, np.float32)
    ev = np.asarray(evidence, np.int64)
    n = int(idx.size)
    if not (sc.size == ev.size == len(because) == n) or n > 0xFFFF:
        raise ValueError("picks columns differ in length (or hold over 65,535 entries)")
    if n and (idx.min() < 0 or ev.min() < 0):
        raise ValueError("picks indices and evidence must not be negative")
    counts = np.array([len(b) for b in because], np.int64)
    positions = np.array([p for b in because for p in b], np.int64)
    if counts.size and counts.max() > 255:
        raise ValueError("at most 255 seeds behind one pick")
    iw = _width(int(idx.max(initial=0)))
    ew = _width(int(ev.max(initial=0)))
    pw = _width(int(positions.max(initial=0)))
    body = b"".join(
        [
            _planes(idx, iw),
            _planes(_score_bits(sc), 2),
            counts.astype(np.uint8).tobytes(),
            _planes(positions, pw),
            _planes(ev, ew),
        ]
    )
    flags = _COMPLETE if complete else 0
    packed = zlib.compress(body, 9, wbits=-15)
    if len(packed) < len(body):
        flags, body = flags | _DEFLATED, packed
    return _PICKS_HEADER.pack(flags, iw, ew, pw, n) + body


def decode_picks(blob: bytes) -> Picks:
    """Raises ValueError on bytes that are no packed picks."""
    try:
        return _decode_picks(blob)
    except (struct.error, zlib.error, TypeError, ValueError) as exc:
        raise ValueError(f"corrupt packed picks: {exc}") from exc


def _decode_picks(blob: bytes) -> Picks:
    flags, iw, ew, pw, n = _PICKS_HEADER.unpack_from(blob)
    body = blob[_PICKS_HEADER.size :]
    if flags & _DEFLATED:
        body = zlib.decompress(body, wbits=-15)
    if not (1 <= iw <= 4 and 1 <= ew <= 4 and 1 <= pw <= 4):
        raise ValueError("packed picks name an unknown width")
    at = 0
    indices = _unplanes(body, at, n, iw).astype(np.int64)
    at += n * iw
    wide = (_unplanes(body, at, n, 2).astype("<u4") << 16).astype("<u4")
    scores = [float(f"{v:.3g}") for v in wide.view("<f4").tolist()]
    at += n * 2
    counts = list(body[at : at + n])
    at += n
    total = sum(counts)
    positions = _unplanes(body, at, total, pw).tolist()
    at += total * pw
    evidence = _unplanes(body, at, n, ew).tolist()
    at += n * ew
    if at != len(body):
        raise ValueError("packed picks have the wrong length")
    return Picks(indices, scores, counts, positions, evidence, bool(flags & _COMPLETE))


def split_history(blob: bytes) -> tuple[bytes, bytes | None]:
    """A stored history's JSON and its packed picks (None: none were stored)."""
    head, sep, tail = blob.partition(PICKS_SEPARATOR)
    return head, (tail if sep else None)


def encode_json(value: Any) -> Blob:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def decode_json(blob: bytes) -> Any:
    return orjson.loads(blob)
