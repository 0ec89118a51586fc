"""The full cart answer against the stack's ceiling and floor, in one run.

For each data set: train into its own redis-server, start three one-worker uvicorn apps
pinned to core 0 (recsvc, ``ceiling_app``, the HMGET-only ``baseline_app``), then drive
each with wrk on core 1, alternating, at 1 and 16 connections, ``--rounds`` times. The
cart is the same four items for all three: popular items of the model (so every list is
long). Prints req/s, p50 and p99 per app and the ratios to the ceiling; writes
benchmarks/out/cart_speed.json. Needs wrk (``apt-get install wrk``) and taskset.

Usage: .venv/bin/python -m benchmarks.cart_speed [online-retail] [complete-journey]
           [--seconds 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.harness import live_model, redis_server, service_env
from benchmarks.scale import CJ_COLUMNS, SHARED, complete_journey_catalog
from recsvc.layout import decode_json, decode_lists

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
APPS = {
    "floor": [PY, "-m", "uvicorn", "--factory", "benchmarks.baseline_app:create"],
    "ceiling": [PY, "-m", "uvicorn", "--factory", "benchmarks.ceiling_app:create"],
    "recsvc": [PY, "-m", "recsvc", "serve"],
}
DATA = {
    "online-retail": ["--purchases", str(SHARED / "online_retail.parquet"), "--preset",
                      "online-retail"],
}  # fmt: skip


def data_args(name: str) -> list[str]:
    if name == "complete-journey":
        return [
            "--purchases", str(SHARED / "complete_journey_transactions.parquet"),
            "--catalog", str(complete_journey_catalog()), *CJ_COLUMNS,
        ]  # fmt: skip
    return DATA[name]


def wrk(
    port: int, conns: int, seconds: float, script: Path, path: str = "/v1/recommendations/cart"
) -> dict[str, float]:
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{int(seconds)}s", "--latency",
         "-s", str(script), f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    got: dict[str, float] = {}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec"):
            got["rps"] = float(parts[1])
        elif parts[:1] in (["50%"], ["99%"]):
            got["p" + parts[0].rstrip("%")] = _ms(parts[1])
        elif "Non-2xx" in line:
            got["non_2xx"] = float(parts[-1])
    return got


def _ms(value: str) -> float:
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * scale
    raise ValueError(value)


def bench(name: str, seconds: float, rounds: int, port_base: int) -> dict[str, Any]:
    with redis_server(port_base, f"speed-{name}") as work:
        return _bench(name, seconds, rounds, port_base, work)


def _bench(name: str, seconds: float, rounds: int, rport: int, work: Path) -> dict[str, Any]:
    # The request log line is part of the answer: written at info level, to a file.
    env = service_env(rport, "speed", log_level="info")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        train = subprocess.run(
            [PY, "-m", "training", "train", *data_args(name), "--force"],
            env=env, capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        if train.returncode:
            raise SystemExit(f"training {name} failed: {train.stderr[-2000:]}")
        print(train.stdout.strip().splitlines()[-1], flush=True)
        r, layout, version, items = live_model(rport, "speed")
        popular, _, _ = decode_lists(r.get(layout.popular(version)))  # type: ignore[arg-type]
        cart = [items[int(popular[i])] for i in (0, 5, 10, 20)]
        script = work / "cart.lua"
        body = json.dumps({"items": cart, "k": 10})
        script.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(body)}\n"
        )
        ports = {}
        for n, (app, cmd) in enumerate(APPS.items(), start=1):
            port = rport + n
            ports[app] = port
            args = cmd + (["--port", str(port), "--log-level", "warning", "--no-access-log"]
                          if app != "recsvc" else [])  # fmt: skip
            app_env = {**env, "RECSVC_PORT": str(port)}
            log = open(work / f"{app}.log", "wb")  # noqa: SIM115 - closed with the process
            pinned = ["taskset", "-c", "0", *args]
            procs.append(subprocess.Popen(pinned, env=app_env, cwd=ROOT, stderr=log))
        for port in ports.values():
            for _ in range(100):
                try:
                    if (
                        httpx.post(
                            f"http://127.0.0.1:{port}/v1/recommendations/cart",
                            content=body,
                            headers={"content-type": "application/json"},
                        ).status_code
                        == 200
                    ):
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        runs: dict[str, dict[int, list[dict[str, float]]]] = {a: {1: [], 16: []} for a in APPS}
        for conns in (1, 16):
            for _ in range(rounds):
                for app, port in ports.items():
                    got = wrk(port, conns, seconds, script)
                    runs[app][conns].append(got)
                    print(f"{name} {app:8s} c{conns:<2d} {got}", flush=True)
        summary: dict[str, Any] = {"data": name, "cart": cart, "items": len(items), "runs": runs}
        for conns in (1, 16):
            per = {a: statistics.median(x["rps"] for x in runs[a][conns]) for a in APPS}
            ratios = [
                rec["rps"] / ceil["rps"]
                for rec, ceil in zip(runs["recsvc"][conns], runs["ceiling"][conns], strict=True)
            ]
            summary[f"c{conns}"] = {
                "rps_median": per,
                "recsvc_over_ceiling": ratios,
                "recsvc_p50_ms": [x.get("p50") for x in runs["recsvc"][conns]],
                "recsvc_p99_ms": [x.get("p99") for x in runs["recsvc"][conns]],
                "ceiling_p50_ms": [x.get("p50") for x in runs["ceiling"][conns]],
            }
            print(
                f"{name} c{conns}: recsvc {per['recsvc']:.0f} req/s, ceiling "
                f"{per['ceiling']:.0f}, floor {per['floor']:.0f}; recsvc/ceiling "
                + ", ".join(f"{x:.2f}" for x in ratios),
                flush=True,
            )
        # Half of recsvc's saturated throughput, paced by wrk's delay() (each of the 16
        # connections waits between requests): the latency a busy storefront sees.
        half = summary["c16"]["rps_median"]["recsvc"] / 2
        paced = work / "cart_paced.lua"
        paced.write_text(script.read_text() + f"function delay() return {16000 / half:.1f} end\n")
        got = wrk(ports["recsvc"], 16, seconds, paced)
        summary["half_load"] = {"target_rps": half, **got}
        print(f"{name} recsvc at half load ({half:.0f} req/s target): {got}", flush=True)
        # A stored customer with the longest history: GET /v1/customers/{id}, recsvc only,
        # against the ceiling's cart throughput measured above.
        customers = r.hkeys(layout.customers(version))
        lengths = r.hmget(layout.customers(version), customers[:5000])
        longest, size = max(
            (
                (c.decode(), len(decode_json(h)[0]))
                for c, h in zip(customers, lengths, strict=False)
            ),
            key=lambda x: x[1],
        )
        path = f"/v1/customers/{longest}/recommendations"
        get = work / "customer.lua"
        get.write_text('wrk.method = "GET"\n')
        summary["customer"] = {"id": longest, "history_items": size}
        for conns in (1, 16):
            got = [
                wrk(ports["recsvc"], conns, seconds, get, path) for _ in range(max(1, rounds - 1))
            ]
            ratio = (
                statistics.median(x["rps"] for x in got)
                / summary[f"c{conns}"]["rps_median"]["ceiling"]
            )
            summary["customer"][f"c{conns}"] = {"runs": got, "over_ceiling_cart": ratio}
            print(
                f"{name} customer ({size} items) c{conns}: {got}; over the ceiling's cart "
                f"{ratio:.2f}",
                flush=True,
            )
        return summary
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="*", default=["online-retail"])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--port-base", type=int, default=8400)
    args = ap.parse_args()
    results = [
        bench(name, args.seconds, args.rounds, args.port_base + 10 * n)
        for n, name in enumerate(args.data)
    ]
    out = ROOT / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "cart_speed.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
