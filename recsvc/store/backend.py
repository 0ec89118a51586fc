"""How a model's keys are read and written on each kind of Redis: one interface, two
backends, chosen by settings (``RECSVC_REDIS_CLUSTER``).

The trainer (``training.publish.publisher.Publisher``) and the service
(``recsvc.store.reader.ModelStore``) say *what* they read and write: a version's lists,
histories, stock and pointers, named by ``recsvc.model``. This module decides *how*, where
the two kinds of Redis differ:

``AsyncBackend`` (the service's side) and ``SyncBackend`` (the trainer's) are the
interface, one module per backend implements it:

- **single node** (``single``: ``AsyncStorage``, ``SyncStorage``): each per-item and
  per-customer part is one hash, and a request reads the pointer, the epoch and the
  lists in one script;
- **cluster** (``cluster``: ``AsyncClusterStorage``, ``SyncClusterStorage``, redis-py's
  cluster clients): those parts are split into ``Layout.buckets`` hashes spread over the slots;
  the pointer script runs on the pointer's slot (``{prefix}``) and the buckets a request
  needs are read beside it, one pipelined round trip per master, all at once. Scripts
  touch only the keys they declare.

Everything else (pointers, the lock, the version's metadata, stock, events, sales) is the
same commands on both: on a cluster those keys share the ``{prefix}`` slot, so the switch
and the stock change stay single atomic steps.

gorse keeps ``storage/cache/redis.go`` beside its cluster variant behind one interface for
the same reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.cluster

from recsvc import model as lay
from recsvc.store.cluster import AsyncClusterStorage, SyncClusterStorage
from recsvc.store.common import AsyncClient as AsyncClient
from recsvc.store.common import Reply as Reply
from recsvc.store.common import SyncClient as SyncClient
from recsvc.store.common import manifest_problems as manifest_problems
from recsvc.store.common import unavailable as unavailable
from recsvc.store.single import AsyncStorage, SyncStorage


class AsyncBackend(Protocol):
    """The service's reads and writes of a version's keys, on either kind of Redis: every
    Redis call the service makes, each raising Redis's errors in the service's terms
    (``unavailable``), never a ``RedisError``."""

    cluster: bool
    client: AsyncClient
    layout: lay.Layout

    async def script(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Runs a Lua script (EVALSHA, loaded on first use) on the keys it declares."""

    async def fetch(
        self, pointer: str, version: str, item_ids: Sequence[str], alternatives: bool
    ) -> Reply:
        """The pointer, the A/B test and, if ``version`` is live, its stock epoch and the
        items' lists (and alternatives), as one consistent read."""

    async def customers(self, pointer: str, version: str, customer_ids: Sequence[str]) -> Reply:
        """The same for customers: stored histories and live order events' histories."""

    async def hmget(self, version: str, part: str, members: Sequence[str]) -> list[bytes | None]:
        """Fields of a bucketed part (None for a member without one), in ``members``'s order."""

    async def hset(self, version: str, part: str, mapping: Mapping[str, bytes]) -> None:
        """Writes fields of a bucketed part."""

    def hscan(
        self, version: str, part: str, count: int = 1000
    ) -> AsyncIterator[dict[bytes, bytes]]:
        """Every field of a bucketed part, in batches."""

    async def memory(self) -> list[dict[str, Any]]:
        """``INFO memory`` of every master holding the model."""

    async def inspect(self, keys: Sequence[str]) -> list[tuple[str, int | None]]:
        """Each key's type and size (``HLEN`` or ``STRLEN``), for the manifest's check."""

    # The commands that are the same on both kinds of Redis (their keys share the
    # ``{prefix}`` slot on a cluster): pointers, stock, catalog, events, audit, sales.

    async def ping(self) -> None: ...

    async def get(self, key: str) -> bytes | None: ...

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]: ...

    async def hmget_key(self, key: str, fields: Sequence[str]) -> list[bytes | None]: ...

    async def hscan_key(
        self, key: str, cursor: int, count: int
    ) -> tuple[int, dict[bytes, bytes]]: ...

    async def xrevrange(self, key: str, count: int) -> list[tuple[bytes, dict[bytes, bytes]]]: ...

    async def batch(self, queue: Callable[[Any], None], atomic: bool = False) -> list[Any]:
        """The commands ``queue`` puts on a pipeline, in one round trip (one transaction
        with ``atomic``)."""


class SyncBackend(Protocol):
    """The trainer's writes of a version's keys, on either kind of Redis."""

    cluster: bool
    client: SyncClient
    layout: lay.Layout

    def put_fields(
        self, pipe: Any, version: str, part: str, mapping: Mapping[str, bytes]
    ) -> dict[int, int]:
        """Queues a bucketed part's fields on ``pipe``; returns how many went to each bucket."""

    def pipeline(self) -> Any:
        """A pipeline (not a transaction) to queue writes on."""

    def inspect(self, keys: Sequence[str]) -> list[tuple[str, int | None]]:
        """Each key's type and size, for the manifest's check."""

    def memory(self) -> list[dict[str, Any]]:
        """``INFO memory`` of every master the model is written to."""

    def scan(self, match: str) -> Iterator[bytes]:
        """Every key matching ``match`` (on a cluster, on every master)."""

    def unlink(self, keys: Sequence[bytes]) -> None:
        """Deletes keys, in batches (on a cluster, split by slot)."""


def layout_for(prefix: str, cluster: bool) -> lay.Layout:
    """The key layout for a prefix on a single node or a cluster."""
    return lay.Layout.for_cluster(prefix) if cluster else lay.Layout(prefix)


def async_storage(client: AsyncClient, layout: lay.Layout) -> AsyncBackend:
    kind = AsyncClusterStorage if layout.cluster else AsyncStorage
    return kind(client, layout)


def sync_storage(client: SyncClient, layout: lay.Layout) -> SyncBackend:
    kind = SyncClusterStorage if layout.cluster else SyncStorage
    return kind(client, layout)


def async_client(
    url: str, cluster: bool, timeout_s: float, max_connections: int = 64, blocking: bool = True
) -> AsyncClient:
    """The service's client: a blocking pool of at most ``max_connections`` (a request
    waits up to ``timeout_s`` for one, then is overload), or a cluster client (a pool of
    that size per master) that learns the slots from the node named."""
    if cluster:
        return aiocluster.RedisCluster.from_url(
            url,
            max_connections=max_connections,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
    if not blocking:
        return aioredis.Redis.from_url(url, socket_timeout=timeout_s)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
    return aioredis.Redis(connection_pool=pool)


async def close(client: AsyncClient) -> None:
    """Closes ``client`` and its pool (a pool given to a client is not closed with it)."""
    await client.aclose()
    if isinstance(client, aioredis.Redis):
        await client.connection_pool.aclose()


def connection_spec(client: SyncClient) -> dict[str, Any]:
    """How to reach the Redis ``client`` talks to, as plain values another process (a Spark
    executor) can be sent and connect with (``client_from_spec``)."""
    if isinstance(client, redis.cluster.RedisCluster):
        node = client.get_default_node()  # type: ignore[no-untyped-call]
        assert node is not None and node.redis_connection is not None
        kwargs = node.redis_connection.connection_pool.connection_kwargs
        where: dict[str, Any] = {"cluster": True, "host": node.host, "port": node.port}
    else:
        kwargs = client.connection_pool.connection_kwargs
        where = {"cluster": False, "host": kwargs.get("host"), "port": kwargs.get("port")}
        where |= {"db": kwargs.get("db", 0), "path": kwargs.get("path")}
    keep = ("username", "password", "ssl", "socket_timeout")
    return where | {k: kwargs[k] for k in keep if kwargs.get(k) is not None}


def client_from_spec(spec: dict[str, Any]) -> SyncClient:
    kwargs = {k: v for k, v in spec.items() if k != "cluster" and v is not None}
    if spec.get("cluster"):
        kwargs.pop("db", None)
        kwargs.pop("path", None)
        return redis.cluster.RedisCluster(**kwargs)
    if "path" in kwargs:
        kwargs.pop("host", None)
        kwargs.pop("port", None)
        kwargs.pop("ssl", None)
        return redis.Redis(unix_socket_path=kwargs.pop("path"), **kwargs)
    return redis.Redis(**kwargs)


def sync_client(url: str, cluster: bool, timeout_s: float = 30.0) -> SyncClient:
    """The trainer's client, on a single node or a cluster."""
    if cluster:
        return redis.cluster.RedisCluster.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=5
        )
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=5)


def close_sync(client: SyncClient) -> None:
    """Closes a trainer's client and every socket it opened: a cluster client's own
    ``close`` leaves each node's connection pool open (the nodes' clients were handed
    their pools, so they do not close them)."""
    if isinstance(client, redis.cluster.RedisCluster):
        for node in client.get_nodes():  # type: ignore[no-untyped-call]
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.disconnect()
    client.close()


@contextmanager
def sync_connected(url: str, cluster: bool) -> Iterator[SyncClient]:
    """``sync_client``, closed with ``close_sync`` when the block ends."""
    client = sync_client(url, cluster)
    try:
        yield client
    finally:
        close_sync(client)
