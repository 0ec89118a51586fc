"""A local Redis Cluster of the bundled ``redis-server`` (``recsvc cluster start``): the
cluster backend tried on one machine, as the README's "Scale out" does and the tests do.

Production runs a managed or operator-run cluster (README, "Deploy on Kubernetes"); this
is its smallest real instance: ``masters`` servers started with ``--cluster-enabled
yes``, the 16,384 slots split evenly with ``CLUSTER ADDSLOTS``, joined with ``CLUSTER
MEET``. No replicas.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from recsvc.store.embedded import redis_server_binary

SLOTS = 16_384
BUS_OFFSET = 10_000
"""Each node's cluster bus listens this far above its port."""


class LocalClusterError(RuntimeError):
    pass


def form(nodes: Sequence[redis.Redis], timeout_s: float = 30.0) -> None:
    """Makes one cluster of fresh nodes: each its even share of the slots, all met."""
    masters = len(nodes)
    for n, node in enumerate(nodes):
        own = range(n * SLOTS // masters, (n + 1) * SLOTS // masters)
        _cluster(node, "ADDSLOTS", *own)
    first = nodes[0].connection_pool.connection_kwargs
    for node in nodes[1:]:
        _cluster(node, "MEET", first["host"], first["port"])
    wait_formed(nodes, timeout_s)


def formed(nodes: Sequence[redis.Redis]) -> bool:
    """Every node sees a healthy cluster of all of them, every slot served."""
    return all(
        b"cluster_state:ok" in _cluster(node, "INFO") and len(_cluster(node, "SLOTS")) == len(nodes)
        for node in nodes
    )


def wait_formed(nodes: Sequence[redis.Redis], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not formed(nodes):
        if time.monotonic() > deadline:
            raise LocalClusterError(f"the cluster did not form within {timeout_s:.0f} s")
        time.sleep(0.05)


def start(directory: Path, port: int = 7000, masters: int = 3) -> list[str]:
    """Starts (or finds running) a cluster of ``masters`` masters on ``port`` and up,
    each node's files under ``directory``; returns the nodes' URLs."""
    if masters < 1 or port < 1 or port + masters - 1 + BUS_OFFSET > 65_535:
        raise LocalClusterError(
            f"ports {port}..{port + masters - 1} leave no room for their cluster bus ports "
            f"(port + {BUS_OFFSET:,} must be at most 65,535)"
        )
    nodes = []
    for n in range(masters):
        node_dir = (directory / f"node-{port + n}").resolve()
        node_dir.mkdir(parents=True, exist_ok=True)
        client = _node(port + n)
        if not _answers(client):
            subprocess.run(
                [redis_server_binary(), "--port", str(port + n), "--bind", "127.0.0.1",
                 "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--dir", str(node_dir), "--daemonize", "yes",
                 "--pidfile", str(node_dir / "redis.pid"), "--logfile", str(node_dir / "redis.log"),
                 "--save", "", "--appendonly", "no"],
                check=True,
            )  # fmt: skip
        nodes.append(client)
    deadline = time.monotonic() + 10
    while not all(_answers(c) for c in nodes):
        if time.monotonic() > deadline:
            raise LocalClusterError(f"the nodes did not start; see {directory}/node-*/redis.log")
        time.sleep(0.05)
    try:
        if not formed(nodes):
            if all(_slots_assigned(c) == 0 for c in nodes):
                form(nodes)
            else:
                wait_formed(nodes, 30)  # formed before, still converging after a restart
    finally:
        for c in nodes:
            c.close()
    return [f"redis://127.0.0.1:{port + n}" for n in range(masters)]


def stop(port: int = 7000, masters: int = 3) -> int:
    """Shuts the nodes down (nothing is saved); returns how many were running."""
    stopped = 0
    for n in range(masters):
        client = _node(port + n)
        if _answers(client):
            with contextlib.suppress(redis.ConnectionError):  # it closes it as it exits
                client.shutdown(nosave=True)
            stopped += 1
        client.close()
    return stopped


def _node(port: int) -> redis.Redis:
    # No retries: probing a node that is not running must answer at once.
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, retry=Retry(NoBackoff(), 0))


def _cluster(node: redis.Redis, *args: object) -> Any:
    """One ``CLUSTER`` subcommand on one node."""
    return node.execute_command("CLUSTER", *args)  # type: ignore[no-untyped-call]


def _slots_assigned(client: redis.Redis) -> int:
    info = bytes(_cluster(client, "INFO")).decode()
    found = re.search(r"cluster_slots_assigned:(\d+)", info)
    return int(found.group(1)) if found else 0


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
