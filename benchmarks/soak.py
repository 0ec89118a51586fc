"""Soak: a minute of mixed load on one worker, then floods, with the worker's memory.

Starts its own redis-server, trains on the given purchases, serves with ``recsvc serve``
(one uvicorn worker, the JSON-400 protocol), then:
1. mixed load for ``--seconds`` from 16 concurrent clients: carts (some with rules),
   histories, stored customers, batches of 20, similar items, and invalid requests;
2. a body flood: 64 requests declaring 10 MB bodies and 16 chunked 10 MB bodies;
3. a rules flood: 2,000 carts, each with its own maximal rules (1,000 excluded ids);
and prints the status counts, latency percentiles and the worker's RSS after each step.
Results go to benchmarks/out/soak.json.

Usage: .venv/bin/python -m benchmarks.soak [purchases] [--seconds 60] [--port-base 8300]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from benchmarks.harness import live_model, redis_server, service_env, wait_ready

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Load:
    def __init__(self, items: list[str], customers: list[str], seed: int = 0) -> None:
        self.items, self.customers = items, customers
        self.rng = random.Random(seed)
        self.status: collections.Counter[str] = collections.Counter()
        self.latency: dict[str, list[float]] = collections.defaultdict(list)

    def request(self) -> tuple[str, str, str, Any]:
        r, items = self.rng, self.items
        kind = r.choices(
            ["cart", "cart_rules", "history", "customer", "batch", "similar", "invalid"],
            weights=[40, 10, 10, 15, 5, 10, 10],
        )[0]
        if kind == "cart":
            return kind, "POST", "/v1/recommendations/cart", {"items": r.sample(items, 2)}
        if kind == "cart_rules":
            rules = {"exclude_items": r.sample(items, 5), "max_per_category": 2}
            body = {"items": r.sample(items, 2), "rules": rules}
            return kind, "POST", "/v1/recommendations/cart", body
        if kind == "history":
            body = {"purchases": [{"item_id": i} for i in r.sample(items, 10)]}
            return kind, "POST", "/v1/recommendations/history", body
        if kind == "customer":
            return kind, "GET", f"/v1/customers/{r.choice(self.customers)}/recommendations", None
        if kind == "batch":
            body = {"requests": [{"customer_id": c} for c in r.sample(self.customers, 20)]}
            return kind, "POST", "/v1/recommendations/batch", body
        if kind == "similar":
            return kind, "GET", f"/v1/items/{r.choice(items)}/similar", None
        bad = r.choice(
            [
                {"items": []},
                {"items": [{"item_id": "x", "quantity": 0}]},
                {"items": ["a"], "k": True},
                {"items": ["a"], "rules": {"boost": {str(n): 2 for n in range(300)}}},
                {"nothing": 1},
            ]
        )
        return kind, "POST", "/v1/recommendations/cart", bad

    async def client(self, http: httpx.AsyncClient, until: float) -> None:
        while time.monotonic() < until:
            kind, method, path, body = self.request()
            t0 = time.perf_counter()
            resp = await http.request(method, path, json=body)
            self.latency[kind].append(time.perf_counter() - t0)
            self.status[f"{resp.status_code // 100}xx"] += 1
            if resp.status_code >= 500:
                self.status[f"5xx {kind}: {resp.text[:120]}"] += 1


async def mixed(base: str, load: Load, seconds: float) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        until = time.monotonic() + seconds
        await asyncio.gather(*(load.client(http, until) for _ in range(16)))


async def body_flood(base: str) -> collections.Counter[int]:
    big = b"x" * (10 << 20)
    seen: collections.Counter[int] = collections.Counter()
    headers = {"content-type": "application/json"}

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 1 << 16):
            yield big[start : start + (1 << 16)]

    async def declared(http: httpx.AsyncClient) -> None:
        try:
            r = await http.post("/v1/recommendations/cart", content=big, headers=headers)
            seen[r.status_code] += 1
        except httpx.TransportError:
            seen[0] += 1  # refused and closed before the body was all sent

    async def chunked(http: httpx.AsyncClient) -> None:
        try:
            r = await http.post("/v1/recommendations/cart", content=chunks(), headers=headers)
            seen[r.status_code] += 1
        except httpx.TransportError:
            seen[0] += 1

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        await asyncio.gather(*(declared(http) for _ in range(64)))
        await asyncio.gather(*(chunked(http) for _ in range(16)))
    return seen


async def rules_flood(base: str, items: list[str]) -> collections.Counter[int]:
    seen: collections.Counter[int] = collections.Counter()
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def one(n: int) -> None:
            rules = {"exclude_items": [f"{n:08d}-{k:055d}" for k in range(1000)]}
            r = await http.post(
                "/v1/recommendations/cart", json={"items": items[:2], "rules": rules}
            )
            seen[r.status_code] += 1

        for start in range(0, 2000, 16):
            await asyncio.gather(*(one(n) for n in range(start, start + 16)))
    return seen


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "purchases", nargs="?", default=str(ROOT.parent / "shared/data/online_retail.parquet")
    )
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--port-base", type=int, default=8300)
    args = ap.parse_args()
    rport, aport = args.port_base, args.port_base + 1
    with redis_server(rport, "soak"):
        out = run(args.purchases, args.seconds, rport, aport)
    (ROOT / "benchmarks" / "out").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "out" / "soak.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


def run(purchases: str, seconds: float, rport: int, aport: int) -> dict[str, Any]:
    env = service_env(rport, "soak", log_requests="false", port=str(aport), log_level="warning")
    api = None
    out: dict[str, Any] = {"purchases": Path(purchases).name, "seconds": seconds}
    try:
        train = subprocess.run(
            [PY, "-m", "training", "train", "--purchases", purchases,
             "--preset", "online-retail", "--force"],
            env=env, capture_output=True, text=True, check=True, cwd=ROOT,
        )  # fmt: skip
        print(train.stdout.strip().splitlines()[-1])
        api = subprocess.Popen([PY, "-m", "recsvc", "serve"], env=env, cwd=ROOT)
        base = f"http://127.0.0.1:{aport}"
        wait_ready(base)
        r, layout, version, items = live_model(rport, "soak")
        customers = [k.decode() for k in r.hkeys(layout.customers(version))][:5000]
        pid = api.pid
        out["rss_mib_start"] = rss_mib(pid)
        load = Load(items, customers)
        asyncio.run(mixed(base, Load(items, customers, seed=1), 5))  # warm up
        out["rss_mib_warm"] = rss_mib(pid)
        t0 = time.monotonic()
        asyncio.run(mixed(base, load, seconds))
        wall = time.monotonic() - t0
        out["rss_mib_after_load"] = rss_mib(pid)
        total = sum(len(v) for v in load.latency.values())
        out["requests"] = total
        out["requests_per_s"] = total / wall
        out["status"] = dict(load.status)
        out["latency_ms"] = {
            kind: {
                "n": len(v),
                "p50": statistics.median(v) * 1000,
                "p99": pct(v, 0.99),
                "max": max(v) * 1000,
            }
            for kind, v in sorted(load.latency.items())
        }
        out["body_flood_status"] = {str(k): v for k, v in asyncio.run(body_flood(base)).items()}
        out["rss_mib_after_body_flood"] = rss_mib(pid)
        out["rules_flood_status"] = {
            str(k): v for k, v in asyncio.run(rules_flood(base, items)).items()
        }
        out["rss_mib_after_rules_flood"] = rss_mib(pid)
        asyncio.run(mixed(base, Load(items, customers, seed=2), 10))
        out["rss_mib_end"] = rss_mib(pid)
        return out
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=10)


if __name__ == "__main__":
    main()
