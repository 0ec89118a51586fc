"""The single-node backend: each per-item and per-customer part is one hash, and a
request reads the pointer, the epoch and the lists in one script."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, cast

from redis.exceptions import NoScriptError, RedisError

from recsvc import model as lay
from recsvc.store.common import (
    SHAS,
    AsyncClient,
    Reply,
    SyncClient,
    inspected,
    sha_of,
    translated,
    unavailable,
)


class AsyncStorage:
    """The service's reads and writes on a single Redis node. Every method raises Redis's
    errors in the service's terms: the ones that talk to Redis are ``translated``; the
    others (``fetch``, ``customers``) only call those."""

    cluster = False

    def __init__(self, client: AsyncClient, layout: lay.Layout) -> None:
        self.client = client
        self.layout = layout

    @translated
    async def script(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        # EVALSHA by hand: redis-py's Script wrapper inspects its arguments on every call,
        # which measured as a third of a cart request's time.
        sha = SHAS.get(source) or SHAS.setdefault(source, sha_of(source))
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

    @translated
    async def hmget(self, version: str, part: str, members: Sequence[str]) -> list[bytes | None]:
        """Fields of a bucketed part (None for a member without one)."""
        if not members:
            return []
        key = self.layout.bucket_key(version, part, 0)
        return cast(list[bytes | None], await self.client.hmget(key, list(members)))

    @translated
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
                try:
                    cursor, batch = await self.client.hscan(key, cursor, count=count)
                except RedisError as exc:
                    raise unavailable(exc) from exc
                yield cast(dict[bytes, bytes], batch)
                if cursor == 0:
                    break

    @translated
    async def memory(self) -> list[dict[str, Any]]:
        """``INFO memory`` of every master holding the model."""
        return [await self.client.info("memory")]

    @translated
    async def inspect(self, keys: Sequence[str]) -> list[tuple[str, int | None]]:
        """Each key's type and size (``HLEN`` or ``STRLEN``), for the manifest's check."""
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.type(key)
                pipe.hlen(key)
                pipe.strlen(key)
            replies = await pipe.execute(raise_on_error=False)
        return inspected(replies)

    # -- the commands that are the same on both backends (the keys share a slot on a
    # cluster: pointers, stock, catalog, events, audit, sales) --------------------------

    @translated
    async def ping(self) -> None:
        await self.client.ping()

    @translated
    async def get(self, key: str) -> bytes | None:
        return cast(bytes | None, await self.client.get(key))

    @translated
    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """Keys of one slot (on a cluster), in one command."""
        return cast(list[bytes | None], await self.client.mget(list(keys)))

    @translated
    async def hmget_key(self, key: str, fields: Sequence[str]) -> list[bytes | None]:
        """Fields of one hash that is not bucketed."""
        return cast(list[bytes | None], await self.client.hmget(key, list(fields)))

    @translated
    async def hscan_key(self, key: str, cursor: int, count: int) -> tuple[int, dict[bytes, bytes]]:
        """One batch of a hash that is not bucketed, and the cursor for the next."""
        cursor, batch = await self.client.hscan(key, cursor, count=count)
        return int(cursor), cast(dict[bytes, bytes], batch)

    @translated
    async def xrevrange(self, key: str, count: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        return cast(
            list[tuple[bytes, dict[bytes, bytes]]], await self.client.xrevrange(key, count=count)
        )

    @translated
    async def batch(self, queue: Callable[[Any], None], atomic: bool = False) -> list[Any]:
        """The commands ``queue`` puts on a pipeline, in one round trip (as one
        ``MULTI``/``EXEC`` transaction with ``atomic``: keys of one slot on a cluster)."""
        async with self.client.pipeline(transaction=atomic) as pipe:
            queue(pipe)
            replies: list[Any] = await pipe.execute()
            return replies


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
        return inspected(pipe.execute(raise_on_error=False))

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
