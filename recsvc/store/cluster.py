"""The Redis Cluster backend: each per-item and per-customer part split into
``Layout.buckets`` hashes spread over the slots; the pointer script runs on the
pointer's slot and the buckets a request needs are read beside it, one pipelined round
trip per master, all at once."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, cast

import redis
import redis.asyncio.cluster as aiocluster
import redis.cluster

from recsvc import model as lay
from recsvc.store.common import Reply, nothing, translated
from recsvc.store.single import AsyncStorage, SyncStorage


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
            self.hmget(version, "alternatives", item_ids) if alternatives else nothing(),
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

    @translated
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

    @translated
    async def hset(self, version: str, part: str, mapping: Mapping[str, bytes]) -> None:
        if not mapping:
            return
        async with self.client.pipeline() as pipe:
            for bucket, ids in self.layout.by_bucket(list(mapping)).items():
                key = self.layout.bucket_key(version, part, bucket)
                pipe.hset(key, mapping={i: mapping[i] for i in ids})
            await pipe.execute()

    @translated
    async def memory(self) -> list[dict[str, Any]]:
        client = cast(aiocluster.RedisCluster, self.client)
        per_node = await client.info("memory", target_nodes=aiocluster.RedisCluster.PRIMARIES)
        return list(cast(dict[str, dict[str, Any]], per_node).values())


class SyncClusterStorage(SyncStorage):
    """The trainer's writes on a Redis Cluster: fields spread over the buckets, each
    master's writes pipelined, multi-key deletes split by slot (redis-py's cluster
    client does both)."""

    cluster = True

    def memory(self) -> list[dict[str, Any]]:
        client = cast(redis.cluster.RedisCluster, self.client)
        per_node = client.info("memory", target_nodes=redis.cluster.RedisCluster.PRIMARIES)
        return list(cast(dict[str, dict[str, Any]], per_node).values())
