"""What both backends share: the client types, a read script's reply, EVALSHA's hashes
and the manifest check."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.cluster

from recsvc import model as lay

AsyncClient = aioredis.Redis | aiocluster.RedisCluster


SyncClient = redis.Redis | redis.cluster.RedisCluster


@dataclass(frozen=True)
class Reply:
    """What ``FETCH_SCRIPT`` or ``CUSTOMERS_SCRIPT`` read (with, on a cluster, the buckets
    read beside it): the live version, and when it is the one asked for (``current``) its
    stock epoch and the fields asked for."""

    live: str | None
    current: bool
    epoch: bytes | None
    first: list[bytes | None]
    """Complements lists, or stored histories."""
    second: list[bytes | None]
    """Alternatives lists, or live order events' histories."""
    test: bytes | None
    """The A/B test in force, as the script read it."""

    @classmethod
    def of(cls, raw: Sequence[Any]) -> Reply:
        live, epoch, first, second, test, current = raw
        return cls(
            None if live is None else bytes(live).decode(),
            bool(current),
            epoch,
            list(first),
            list(second),
            test,
        )


def sha_of(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()


async def nothing() -> list[bytes | None]:
    return []


def inspected(replies: Sequence[Any]) -> list[tuple[str, int | None]]:
    out: list[tuple[str, int | None]] = []
    for n in range(0, len(replies), 3):
        kind = replies[n]
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        size = replies[n + 1] if kind == "hash" else replies[n + 2] if kind == "string" else None
        out.append((kind, size if isinstance(size, int) else None))
    return out


def manifest_problems(
    entries: Sequence[lay.ManifestEntry], found: Sequence[tuple[str, int | None]]
) -> list[str]:
    """What does not match the manifest: each entry's key missing, of another type, or of
    another size than written (``found``: ``inspect``'s answer for the entries' keys)."""
    problems = []
    for e, (kind, size) in zip(entries, found, strict=True):
        name = e.part if e.bucket is None else f"{e.part} bucket {e.bucket}"
        if kind == "none":
            problems.append(f"{name} is missing")
        elif kind != e.kind or size is None:
            problems.append(f"{name} is a {kind}, not a {e.kind}")
        elif (e.size is None and size == 0) or (e.size is not None and size != e.size):
            problems.append(f"{name} has size {size}, the manifest says {e.size}")
    return problems


SHAS: dict[str, str] = {}
