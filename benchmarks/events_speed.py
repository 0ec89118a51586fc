"""Throughput and latency of live order events (``POST /v1/events/orders``), one worker.

Trains the bundled sample into its own redis-server, serves it with one uvicorn worker
pinned to core 0 (with an ingest token), and drives it with wrk on core 1 at 1 and 16
connections, every request a new order of two lines (``events.lua``). Prints req/s, p50
and p99, and checks that every accepted event is on the stream.

Usage: .venv/bin/python -m benchmarks.events_speed [--seconds 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from pathlib import Path

import redis

from benchmarks.cart_speed import wrk
from benchmarks.harness import redis_server, service_env, wait_ready
from recsvc.cli.common import sample_path
from recsvc.model import Layout

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--port-base", type=int, default=8400)
    args = ap.parse_args()
    rport, aport = args.port_base, args.port_base + 1
    token = secrets.token_urlsafe(32)
    with redis_server(rport, "events"):
        env = service_env(rport, "bench", log_level="warning")
        env |= {"RECSVC_INGEST_TOKEN": token, "RECSVC_PORT": str(aport)}
        subprocess.run(
            [PY, "-m", "training", "train", "--purchases", str(sample_path()),
             "--preset", "online-retail"],
            env=env, check=True, capture_output=True, cwd=ROOT,
        )  # fmt: skip
        api = subprocess.Popen(
            ["taskset", "-c", "0", PY, "-m", "recsvc", "serve"], env=env, cwd=ROOT
        )
        try:
            wait_ready(f"http://127.0.0.1:{aport}")
            os.environ["INGEST_TOKEN"] = token
            for r in range(args.rounds):
                for conns in (1, 16):
                    os.environ["RUN_TAG"] = f"{r}-{conns}"
                    got = wrk(
                        aport, conns, args.seconds, ROOT / "benchmarks/events.lua",
                        "/v1/events/orders",
                    )  # fmt: skip
                    print(f"round {r + 1} c{conns}: {got}", flush=True)
        finally:
            api.terminate()
            api.wait(timeout=20)
        client = redis.Redis(port=rport)
        layout = Layout("bench")
        added, kept = int(client.get(layout.events_added) or 0), client.xlen(layout.events)
        print(f"events added {added:,} (every request a new order), on the stream {kept:,}")


if __name__ == "__main__":
    main()
