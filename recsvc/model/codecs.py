"""How a version's values are encoded.

Neighbour lists are packed little-endian ``(uint32 index, float32 score, uint32 count)``
triples, one hash field per item: 12 bytes a neighbour, decoded with one
``numpy.frombuffer`` and no parsing. Stored histories and everything else are JSON."""

from __future__ import annotations

from collections.abc import Sequence
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
