"""E-mail path and upsell checks on a real model, through real HTTP.

Starts its own redis-server and trains on the given purchases (with the quality gate),
serves with one uvicorn worker, then measures:
- the batch endpoint's latency for 100 stored customers (median and p90 of 50 calls),
- ``recsvc export`` throughput over every stored customer (customers per second),
- that every upsell suggestion for 1,000 carts is priced within the band above the item
  it upgrades (checked against the published catalog, not the response's own numbers),
and prints one cart request and its response.

Usage: .venv/bin/python -m benchmarks.serving_checks [purchases] [--port-base 8200]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.harness import live_model, redis_server, service_env, wait_ready
from recsvc.model import decode_json

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "purchases", nargs="?", default=str(ROOT.parent / "shared/data/online_retail.parquet")
    )
    ap.add_argument("--port-base", type=int, default=8200)
    args = ap.parse_args()
    rport, aport = args.port_base, args.port_base + 1
    with redis_server(rport, "bench") as work:
        run(args.purchases, rport, aport, work)


def run(purchases: str, rport: int, aport: int, work: Path) -> None:
    env = service_env(rport, "bench", log_requests="false")
    api = None
    try:
        train = subprocess.run(
            [PY, "-m", "training", "train", "--purchases", purchases,
             "--preset", "online-retail"],
            env=env, capture_output=True, text=True, check=True, cwd=ROOT,
        )  # fmt: skip
        print(train.stdout.strip().splitlines()[-1])
        api = subprocess.Popen(
            [PY, "-m", "uvicorn", "--factory", "recsvc.api.app:app_from_environment",
             "--port", str(aport), "--log-level", "warning", "--no-access-log"],
            env=env, cwd=ROOT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{aport}"
        client = httpx.Client(base_url=base, timeout=30)
        wait_ready(base)
        r, layout, version, items = live_model(rport, "bench")
        catalog = decode_json(r.get(layout.catalog(version)))  # type: ignore[arg-type]
        price = {i: c.get("price") for i, c in zip(items, catalog, strict=True)}
        customers = sorted(k.decode() for k in r.hkeys(layout.customers(version)))

        rng = random.Random(0)
        # Batch of 100 customers.
        timings = []
        for _ in range(50):
            body = {"requests": [{"customer_id": c} for c in rng.sample(customers, 100)], "k": 10}
            t0 = time.perf_counter()
            resp = client.post("/v1/recommendations/batch", json=body)
            timings.append(time.perf_counter() - t0)
            assert resp.status_code == 200 and len(resp.json()["results"]) == 100
        timings.sort()
        print(
            f"batch of 100 customers: median {statistics.median(timings) * 1000:.1f} ms, "
            f"p90 {timings[int(0.9 * len(timings))] * 1000:.1f} ms (50 calls)"
        )

        # Export every stored customer.
        ids = work / "ids.txt"
        ids.write_text("\n".join(customers) + "\n")
        out = work / "export.jsonl"
        t0 = time.perf_counter()
        done = subprocess.run(
            [PY, "-m", "recsvc", "export", "--customers", str(ids), "--out", str(out)],
            env=env, capture_output=True, text=True, check=True, cwd=ROOT,
        )  # fmt: skip
        wall = time.perf_counter() - t0
        print(done.stdout.strip())
        print(f"export wall time with process start: {wall:.2f} s for {len(customers)} customers")

        # Upsell price bands over 1,000 carts.
        checked = violations = with_upsell = 0
        for _ in range(1000):
            cart = rng.sample(items, rng.choice([1, 2, 3]))
            body = client.post("/v1/recommendations/cart", json={"items": cart, "k": 5}).json()
            slots = [s["item_id"] for s in body["cross_sell"]] + [
                u["item_id"] for u in body["upsell"]
            ]
            assert len(slots) == len(set(slots)) and not set(slots) & set(cart)
            with_upsell += bool(body["upsell"])
            for u in body["upsell"]:
                checked += 1
                low, high = 1.05 * price[u["upgrades"]], 2.0 * price[u["upgrades"]]
                if not low - 1e-6 <= price[u["item_id"]] <= high + 1e-6:
                    violations += 1
        print(
            f"upsell: {checked} suggestions in {with_upsell}/1000 carts, "
            f"{violations} outside the 1.05x-2x band; slots never overlapped or held a cart item"
        )
        example = {"items": ["85123A", "71053"], "k": 3, "upsell_k": 2}
        resp = client.post("/v1/recommendations/cart", json=example)
        print("POST /v1/recommendations/cart", json.dumps(example))
        print(json.dumps(resp.json(), indent=2))
    finally:
        if api is not None:
            api.terminate()
            api.wait()


if __name__ == "__main__":
    main()
