"""What both backends share: the client types, a read script's reply, EVALSHA's hashes
and the manifest check."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.cluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, RedisError

from recsvc import model as lay
from recsvc.errors import OverloadedError, StoreFullError, StoreUnavailableError

P = ParamSpec("P")
T = TypeVar("T")

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


def unavailable(exc: RedisError) -> StoreUnavailableError:
    """A Redis error in the service's terms: a pool that stayed busy past the timeout is
    overload, not an outage; a refused write at ``maxmemory`` is a full store."""
    if isinstance(exc, RedisConnectionError) and isinstance(exc.__cause__, TimeoutError):
        return OverloadedError(
            "every Redis connection stayed busy past the timeout: too many concurrent "
            "requests for the pool; retry shortly"
        )
    if isinstance(exc, OutOfMemoryError):
        return StoreFullError(f"Redis refused the write, it is at maxmemory: {exc}")
    return StoreUnavailableError(f"redis did not answer: {exc}")


def translated(
    method: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """A backend's method with Redis's errors in the service's terms (``unavailable``):
    the one place the service translates them."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except RedisError as exc:
            raise unavailable(exc) from exc

    return call
