"""How a model's keys are read and written on each kind of Redis: one interface, two
backends, chosen by settings (``RECSVC_REDIS_CLUSTER``).

The trainer (``training.publish.publisher.Publisher``) and the service
(``recsvc.store.reader.ModelStore``) say *what* they read and write: a version's lists,
histories, stock and pointers, named by ``recsvc.model.layout``. This module decides *how*, where
the two kinds of Redis differ:

- **single node** (``AsyncStorage``, ``SyncStorage``): each per-item and per-customer part
  is one hash, and a request reads the pointer, the epoch and the lists in one script;
- **cluster** (``AsyncClusterStorage``, ``SyncClusterStorage``, redis-py's cluster
  clients): those parts are split into ``Layout.buckets`` hashes spread over the slots;
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

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.cluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, OutOfMemoryError, RedisError

from recsvc import model as lay
from recsvc.errors import OverloadedError, StoreFullError, StoreUnavailableError

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


def _sha(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()


class AsyncStorage:
    """The service's reads and writes on a single Redis node."""

    cluster = False

    def __init__(self, client: AsyncClient, layout: lay.Layout) -> None:
        self.client = client
        self.layout = layout

    async def script(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        # EVALSHA by hand: redis-py's Script wrapper inspects its arguments on every call,
        # which measured as a third of a cart request's time.
        sha = _SHAS.get(source) or _SHAS.setdefault(source, _sha(source))
        try:
            return await self.client.evalsha(sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.client.script_load(source)
            return await self.client.evalsha(sha, len(keys), *keys, *args)

    async def fetch(
        self, pointer: str, version: str, item_ids: Sequence[str], alternatives: bool
    ) -> Reply:
        """The pointer, the A/B test and, if ``version`` is live, its epoch and the items'
        lists, in one atomic step."""
        keys, args = self.layout.fetch_args(version, item_ids, alternatives, pointer)
        return Reply.of(await self.script(lay.FETCH_SCRIPT, keys, args))

    async def customers(self, pointer: str, version: str, customer_ids: Sequence[str]) -> Reply:
        """The pointer, the A/B test and, if ``version`` is live, its epoch, the customers'
        stored histories and their live order events' histories."""
        keys, args = self.layout.customers_args(version, customer_ids, pointer)
        return Reply.of(await self.script(lay.CUSTOMERS_SCRIPT, keys, args))

    async def hmget(self, version: str, part: str, members: Sequence[str]) -> list[bytes | None]:
        """Fields of a bucketed part (None for a member without one)."""
        if not members:
            return []
        key = self.layout.bucket_key(version, part, 0)
        return cast(list[bytes | None], await self.client.hmget(key, list(members)))

    async def hset(self, version: str, part: str, mapping: Mapping[str, bytes]) -> None:
        if mapping:
            key = self.layout.bucket_key(version, part, 0)
            await self.client.hset(key, mapping=dict(mapping))  # type: ignore[arg-type]

    async def hscan(
        self, version: str, part: str, count: int = 1000
    ) -> AsyncIterator[dict[bytes, bytes]]:
        """Every field of a bucketed part, in batches."""
        for key in dict.fromkeys(self.layout.bucket_keys(version, part)):
            cursor = 0
            while True:
                cursor, batch = await self.client.hscan(key, cursor, count=count)
                yield cast(dict[bytes, bytes], batch)
                if cursor == 0:
                    break

    async def memory(self) -> list[dict[str, Any]]:
        """``INFO memory`` of every master holding the model."""
        return [await self.client.info("memory")]

    async def inspect(self, keys: Sequence[str]) -> list[tuple[str, int | None]]:
        """Each key's type and size (``HLEN`` or ``STRLEN``), for the manifest's check."""
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.type(key)
                pipe.hlen(key)
                pipe.strlen(key)
            replies = await pipe.execute(raise_on_error=False)
        return _inspected(replies)


class AsyncClusterStorage(AsyncStorage):
    """The service's reads and writes on a Redis Cluster: the pointer script on the
    pointer's slot, the buckets a request needs read beside it, one pipeline per master,
    all at once."""

    cluster = True

    async def fetch(
        self, pointer: str, version: str, item_ids: Sequence[str], alternatives: bool
    ) -> Reply:
        keys, args = self.layout.fetch_args(version, [], False, pointer)
        if not item_ids:
            return Reply.of(await self.script(lay.FETCH_SCRIPT, keys, args))
        state, comp, alts = await asyncio.gather(
            self.script(lay.FETCH_SCRIPT, keys, args),
            self.hmget(version, "neighbours", item_ids),
            self.hmget(version, "alternatives", item_ids) if alternatives else _nothing(),
        )
        head = Reply.of(state)
        if not head.current:
            return head
        return Reply(head.live, True, head.epoch, comp, alts, head.test)

    async def customers(self, pointer: str, version: str, customer_ids: Sequence[str]) -> Reply:
        keys, args = self.layout.customers_args(version, customer_ids, pointer)
        if not customer_ids:
            return Reply.of(await self.script(lay.CUSTOMERS_SCRIPT, keys, args))
        state, stored = await asyncio.gather(
            self.script(lay.CUSTOMERS_SCRIPT, keys, args),
            self.hmget(version, "customers", customer_ids),
        )
        head = Reply.of(state)
        if not head.current:
            return head
        return Reply(head.live, True, head.epoch, stored, head.second, head.test)

    async def hmget(self, version: str, part: str, members: Sequence[str]) -> list[bytes | None]:
        if not members:
            return []
        groups = self.layout.by_bucket(list(dict.fromkeys(members)))
        if len(groups) == 1:
            ((bucket, ids),) = groups.items()
            key = self.layout.bucket_key(version, part, bucket)
            found = dict(zip(ids, await self.client.hmget(key, ids), strict=True))
        else:
            async with self.client.pipeline() as pipe:
                for bucket, ids in groups.items():
                    pipe.hmget(self.layout.bucket_key(version, part, bucket), ids)
                replies = await pipe.execute()
            found = {}
            for ids, values in zip(groups.values(), replies, strict=True):
                found.update(zip(ids, values, strict=True))
        return [cast(bytes | None, found[m]) for m in members]

    async def hset(self, version: str, part: str, mapping: Mapping[str, bytes]) -> None:
        if not mapping:
            return
        async with self.client.pipeline() as pipe:
            for bucket, ids in self.layout.by_bucket(list(mapping)).items():
                key = self.layout.bucket_key(version, part, bucket)
                pipe.hset(key, mapping={i: mapping[i] for i in ids})
            await pipe.execute()

    async def memory(self) -> list[dict[str, Any]]:
        client = cast(aiocluster.RedisCluster, self.client)
        per_node = await client.info("memory", target_nodes=aiocluster.RedisCluster.PRIMARIES)
        return list(cast(dict[str, dict[str, Any]], per_node).values())


async def _nothing() -> list[bytes | None]:
    return []


def _inspected(replies: Sequence[Any]) -> list[tuple[str, int | None]]:
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


class SyncStorage:
    """The trainer's writes on a single Redis node."""

    cluster = False

    def __init__(self, client: SyncClient, layout: lay.Layout) -> None:
        self.client = client
        self.layout = layout

    def put_fields(
        self, pipe: Any, version: str, part: str, mapping: Mapping[str, bytes]
    ) -> dict[int, int]:
        """Queues ``mapping``'s fields of a bucketed part on ``pipe``; returns how many
        went to each bucket (the manifest counts them)."""
        counts: dict[int, int] = {}
        for bucket, ids in self.layout.by_bucket(list(mapping)).items():
            key = self.layout.bucket_key(version, part, bucket)
            pipe.hset(key, mapping={i: mapping[i] for i in ids})
            counts[bucket] = len(ids)
        return counts

    def pipeline(self) -> Any:
        return self.client.pipeline(transaction=False)

    def inspect(self, keys: Sequence[str]) -> list[tuple[str, int | None]]:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
            pipe.hlen(key)
            pipe.strlen(key)
        return _inspected(pipe.execute(raise_on_error=False))

    def memory(self) -> list[dict[str, Any]]:
        """``INFO memory`` of every master the model is written to."""
        info: dict[str, Any] = self.client.info("memory")
        return [info]

    def scan(self, match: str) -> Iterator[bytes]:
        """Every key matching ``match`` (on a cluster, on every master)."""
        return cast(Iterator[bytes], self.client.scan_iter(match=match, count=1000))

    def unlink(self, keys: Sequence[bytes]) -> None:
        for start in range(0, len(keys), 500):
            self.client.unlink(*keys[start : start + 500])


class SyncClusterStorage(SyncStorage):
    """The trainer's writes on a Redis Cluster: fields spread over the buckets, each
    master's writes pipelined, multi-key deletes split by slot (redis-py's cluster
    client does both)."""

    cluster = True

    def memory(self) -> list[dict[str, Any]]:
        client = cast(redis.cluster.RedisCluster, self.client)
        per_node = client.info("memory", target_nodes=redis.cluster.RedisCluster.PRIMARIES)
        return list(cast(dict[str, dict[str, Any]], per_node).values())


_SHAS: dict[str, str] = {}


# -- choosing the backend ---------------------------------------------------------------


def layout_for(prefix: str, cluster: bool) -> lay.Layout:
    """The key layout for a prefix on a single node or a cluster."""
    return lay.Layout.for_cluster(prefix) if cluster else lay.Layout(prefix)


def async_storage(client: AsyncClient, layout: lay.Layout) -> AsyncStorage:
    kind = AsyncClusterStorage if layout.cluster else AsyncStorage
    return kind(client, layout)


def sync_storage(client: SyncClient, layout: lay.Layout) -> SyncStorage:
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
