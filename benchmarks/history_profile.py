"""Where a stored customer's answer spends its time, in-process: the batch endpoint's
work (fetch, rank, render) for every stored customer of a real model, timed per stage and
optionally under cProfile. Trains Online Retail into its own redis-server first.

Usage: .venv/bin/python -m benchmarks.history_profile [purchases] [--profile] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson
import redis.asyncio as aioredis

from benchmarks.harness import redis_server, service_env
from recsvc.answers import recommend as rec
from recsvc.config import Settings
from recsvc.model import Layout
from recsvc.store import CustomerQuery, ModelStore

ROOT = Path(__file__).resolve().parent.parent
BATCH = 100


async def measure(port: int, rounds: int, profile: bool) -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{port}/0", key_prefix="bench")
    client = aioredis.Redis.from_url(str(settings.redis_url))
    store = ModelStore(client, Layout("bench"), refresh_interval_s=0.25)
    view = await store.live_view()
    ids = [c async for batch in store.scan_customers(view) for c, _ in batch]
    print(f"{len(ids)} stored customers, model {view.version}")
    batches = [ids[i : i + BATCH] for i in range(0, len(ids), BATCH)]
    await store.customers([CustomerQuery(c) for c in ids])  # lists kept, as in serving
    prof = cProfile.Profile() if profile else None
    for r in range(rounds):
        fetch = rank = render = 0.0
        per_batch = []
        if prof:
            prof.enable()
        for batch in batches:
            t0 = time.perf_counter()
            view, fetched = await store.customers([CustomerQuery(c) for c in batch])
            t1 = time.perf_counter()
            rankings = [
                rec.rank_stored(view, settings, f.history, f.lists, 10, True) for f in fetched
            ]
            t2 = time.perf_counter()
            body = orjson.dumps(
                {
                    "results": [
                        {"customer_id": c, "recommendations": rec.suggestions(view, g)}
                        for c, g in zip(batch, rankings, strict=True)
                    ]
                }
            )
            t3 = time.perf_counter()
            assert body
            fetch, rank, render = fetch + t1 - t0, rank + t2 - t1, render + t3 - t2
            per_batch.append((t3 - t0) * 1000 * BATCH / len(batch))
        if prof:
            prof.disable()
        n = len(ids)
        print(
            f"round {r + 1}: per customer fetch {fetch / n * 1e6:.0f} us, rank "
            f"{rank / n * 1e6:.0f} us, render {render / n * 1e6:.0f} us; batch of {BATCH}: "
            f"median {statistics.median(per_batch):.1f} ms ({n / (fetch + rank + render):.0f}/s)"
        )
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
    await client.aclose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "purchases", nargs="?", default=str(ROOT.parent / "shared/data/online_retail.parquet")
    )
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--port", type=int, default=8290)
    args = ap.parse_args()
    with redis_server(args.port, "profile"):
        env = service_env(args.port, "bench")
        subprocess.run(
            [sys.executable, "-m", "training", "train", "--purchases", args.purchases,
             "--preset", "online-retail"],
            env=env, check=True, capture_output=True, cwd=ROOT,
        )  # fmt: skip
        asyncio.run(measure(args.port, args.rounds, args.profile))


if __name__ == "__main__":
    main()
