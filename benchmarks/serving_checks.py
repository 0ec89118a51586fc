"""The e-mail path on a real model, through real HTTP, against the code before a change.

Starts its own redis-server. Each tree (this one, and ``--before DIR``: an older
checkout) trains the same purchases with its own code into its own key prefix and is
served by one uvicorn worker of its own code pinned to core 0. Then, alternating between
the trees, ``--rounds`` times:

- ``POST /v1/recommendations/batch`` with 100 stored customers: the median of 30 calls;
- ``recsvc export`` of every stored customer (that tree's command): customers a second;
- ``GET /v1/customers/{id}/recommendations`` over 2,000 stored customers in turn, and the
  four-popular-item cart, each with wrk at 16 connections on core 1: the customer's
  req/s over the cart's. The redis-server is pinned to core 1 too, beside wrk.

Prints the table (median and range over the rounds per tree), and checks once on this
tree that every upsell of 1,000 carts is priced in the band above the item it upgrades.
Writes benchmarks/out/serving_checks.json. Needs wrk and taskset.

Usage: .venv/bin/python -m benchmarks.serving_checks [online-retail|complete-journey]
           [--before DIR] [--rounds 3] [--seconds 5]
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
from typing import Any

import httpx

from benchmarks.cart_speed import data_args, wrk
from benchmarks.harness import live_model, redis_server, service_env, wait_ready
from recsvc.model import decode_json, decode_lists

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
PY = sys.executable


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="?", default="online-retail")
    ap.add_argument("--before", type=Path, help="an older checkout, measured alternating")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--port-base", type=int, default=8200)
    args = ap.parse_args()
    trees = {"recsvc": ROOT}
    if args.before is not None:
        trees["before"] = args.before.resolve()
    with redis_server(args.port_base, "checks", cores="1") as work:
        summary = run(args, trees, work)
    OUT.mkdir(exist_ok=True)
    (OUT / "serving_checks.json").write_text(json.dumps(summary, indent=2))


def run(args: argparse.Namespace, trees: dict[str, Path], work: Path) -> dict[str, Any]:
    rport = args.port_base
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports, envs = {}, {}
    try:
        for n, (name, tree) in enumerate(trees.items(), start=1):
            env = envs[name] = service_env(rport, f"checks-{name}", log_requests="false")
            t0 = time.perf_counter()
            train = subprocess.run(
                [PY, "-m", "training", "train", *data_args(args.data), "--force"],
                env=env, capture_output=True, text=True, cwd=tree,
            )  # fmt: skip
            if train.returncode:
                raise SystemExit(f"training with {name} failed: {train.stderr[-2000:]}")
            wall = time.perf_counter() - t0
            print(f"{name}: trained in {wall:.0f} s", flush=True)
            ports[name] = port = rport + n
            log = open(work / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
            procs[name] = subprocess.Popen(
                ["taskset", "-c", "0", PY, "-m", "uvicorn", "--factory",
                 "recsvc.api.app:app_from_environment", "--port", str(port),
                 "--log-level", "warning", "--no-access-log"],
                env=env, cwd=tree, stderr=log,
            )  # fmt: skip
            wait_ready(f"http://127.0.0.1:{port}")
        inputs = {name: _inputs(rport, name, work) for name in trees}
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for rnd in range(args.rounds):
            for name, tree in trees.items():
                got = _round(name, tree, ports[name], envs[name], inputs[name], args, rnd)
                runs[name].append(got)
                print(f"round {rnd + 1} {name}: {got}", flush=True)
        summary: dict[str, Any] = {"data": args.data, "runs": runs}
        _print_table(runs)
        summary["upsell"] = _upsell_bands(rport, "recsvc", ports["recsvc"])
        return summary
    finally:
        for p in procs.values():
            p.terminate()
            p.wait(timeout=20)


def _inputs(rport: int, name: str, work: Path) -> dict[str, Any]:
    r, layout, version, items = live_model(rport, f"checks-{name}")
    customers = sorted(k.decode() for k in r.hkeys(layout.customers(version)))
    ids = work / f"{name}-ids.txt"
    ids.write_text("\n".join(customers) + "\n")
    popular, _, _ = decode_lists(r.get(layout.popular(version)))  # type: ignore[arg-type]
    cart = work / f"{name}-cart.lua"
    body = json.dumps({"items": [items[int(popular[i])] for i in (0, 5, 10, 20)], "k": 10})
    cart.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body)}\n"
    )
    sample = random.Random(3).sample(customers, min(2000, len(customers)))
    paths = ",\n".join(json.dumps(f"/v1/customers/{c}/recommendations") for c in sample)
    get = work / f"{name}-customers.lua"
    get.write_text(
        f"local paths = {{\n{paths}\n}}\n"
        "local n = math.random(#paths)\n"
        'function request()\n  n = n % #paths + 1\n  return wrk.format("GET", paths[n])\nend\n'
    )
    return {"customers": customers, "ids": ids, "cart": cart, "get": get, "work": work}


def _round(
    name: str,
    tree: Path,
    port: int,
    env: dict[str, str],
    inputs: dict[str, Any],
    args: argparse.Namespace,
    rnd: int,
) -> dict[str, float]:
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    rng = random.Random(rnd)
    timings = []
    for _ in range(30):
        sample = rng.sample(inputs["customers"], 100)
        body = {"requests": [{"customer_id": c} for c in sample], "k": 10}
        t0 = time.perf_counter()
        resp = client.post("/v1/recommendations/batch", json=body)
        timings.append(time.perf_counter() - t0)
        assert resp.status_code == 200 and len(resp.json()["results"]) == 100
    out = inputs["work"] / f"{name}-export.jsonl"
    done = subprocess.run(
        [PY, "-m", "recsvc", "export", "--customers", str(inputs["ids"]), "--out", str(out)],
        env=env, capture_output=True, text=True, check=True, cwd=tree,
    )  # fmt: skip
    rate = _export_rate(done.stdout + done.stderr)
    cart = wrk(port, 16, args.seconds, inputs["cart"])
    customer = wrk(port, 16, args.seconds, inputs["get"], "/")
    return {
        "batch100_ms": round(statistics.median(timings) * 1000, 2),
        "export_per_s": rate,
        "customer_rps": customer["rps"],
        "cart_rps": cart["rps"],
        "customer_over_cart": round(customer["rps"] / cart["rps"], 3),
        "customer_p50_ms": customer["p50"],
    }


def _export_rate(text: str) -> float:
    """The export's own rate (``exported: ... per_second=N``): the process start and
    the model load are outside it."""
    for word in text.split():
        if word.startswith("per_second="):
            return float(word.split("=", 1)[1])
    raise SystemExit(f"no rate in the export's output: {text[-500:]}")


def _print_table(runs: dict[str, list[dict[str, float]]]) -> None:
    rows = (
        ("POST /v1/recommendations/batch, 100 stored customers, median ms", "batch100_ms"),
        ("recsvc export, customers/s", "export_per_s"),
        ("GET /v1/customers/{id} req/s over the cart's, 16 connections", "customer_over_cart"),
        ("GET /v1/customers/{id} req/s, 16 connections", "customer_rps"),
        ("POST /v1/recommendations/cart req/s, 16 connections", "cart_rps"),
    )
    names = list(runs)
    print("\n| | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for label, key in rows:
        cells = []
        for name in names:
            values = [r[key] for r in runs[name]]
            cells.append(
                f"{statistics.median(values):,.2f} ({min(values):,.2f}-{max(values):,.2f})"
            )
        print(f"| {label} | " + " | ".join(cells) + " |")


def _upsell_bands(rport: int, name: str, port: int) -> dict[str, int]:
    r, layout, version, items = live_model(rport, f"checks-{name}")
    catalog = decode_json(r.get(layout.catalog(version)))  # type: ignore[arg-type]
    price = {i: c.get("price") for i, c in zip(items, catalog, strict=True)}
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    rng = random.Random(0)
    checked = violations = with_upsell = 0
    for _ in range(1000):
        cart = rng.sample(items, rng.choice([1, 2, 3]))
        body = client.post("/v1/recommendations/cart", json={"items": cart, "k": 5}).json()
        slots = [s["item_id"] for s in body["cross_sell"]] + [u["item_id"] for u in body["upsell"]]
        assert len(slots) == len(set(slots)) and not set(slots) & set(cart)
        with_upsell += bool(body["upsell"])
        for u in body["upsell"]:
            checked += 1
            low, high = 1.05 * price[u["upgrades"]], 2.0 * price[u["upgrades"]]
            if not low - 1e-6 <= price[u["item_id"]] <= high + 1e-6:
                violations += 1
    print(
        f"upsell: {checked} suggestions in {with_upsell}/1000 carts, {violations} outside "
        "the 1.05x-2x band; slots never overlapped or held a cart item"
    )
    return {"checked": checked, "carts_with_upsell": with_upsell, "violations": violations}


if __name__ == "__main__":
    main()
