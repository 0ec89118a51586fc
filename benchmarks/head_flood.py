"""Request heads under attack: the worker's memory and how long slow heads are held.

Starts its own redis-server and ``recsvc serve`` (one worker, no model needed: the
requests never get past their heads), from this checkout or from ``--tree`` (another
checkout with its own ``.venv``, for the code before a change), then:
1. a flood: 64 connections, each sending an 8 MiB header that never ends, in 64 KiB
   writes; the worker's RSS sampled every 20 ms (idle before, peak during);
2. a slow head: one byte a second, never the end of the head; how long it is held
   (``--slow-max`` seconds at most);
3. slowloris: 1,000 sockets each holding a partial head; how many are still open after
   ``--hold`` seconds.

Usage: .venv/bin/python -m benchmarks.head_flood [--tree DIR] [--hold 15] [--slow-max 40]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx

from benchmarks.harness import redis_server
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def flood_client(port: int, size: int, stop: threading.Event) -> None:
    chunk = b"a" * 65536
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Flood: ")
            sent = 0
            while sent < size and not stop.is_set():
                sock.sendall(chunk)
                sent += len(chunk)
            stop.wait(30)
    except OSError:
        pass


def flood(port: int, pid: int, seconds: float) -> dict[str, float]:
    idle = rss_mib(pid)
    stop = threading.Event()
    clients = [
        threading.Thread(target=flood_client, args=(port, 8 << 20, stop), daemon=True)
        for _ in range(64)
    ]
    for client in clients:
        client.start()
    peak, until = idle, time.monotonic() + seconds
    while time.monotonic() < until:
        peak = max(peak, rss_mib(pid))
        time.sleep(0.02)
    stop.set()
    for client in clients:
        client.join(timeout=30)
    return {
        "idle_mib": round(idle, 1),
        "peak_mib": round(peak, 1),
        "growth_mib": round(peak - idle, 1),
    }


def slow_head(port: int, limit: float) -> float:
    """Seconds until the server ends a head sent at one byte a second."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        sock.settimeout(1.0)
        while time.monotonic() - started < limit:
            try:
                if sock.recv(65536) == b"":
                    break
            except TimeoutError:
                pass
            except OSError:
                break
            try:
                sock.sendall(b"X")
            except OSError:
                break
    return round(time.monotonic() - started, 1)


def slowloris(port: int, count: int, hold: float) -> int:
    """Of ``count`` sockets each holding a partial head, how many are open after ``hold`` s."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        sockets.append(sock)
    time.sleep(hold)
    open_ = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            sock.recv(1)  # an answer or the end of the stream: no longer held
        except BlockingIOError:
            open_ += 1  # nothing to read: still held open
        except OSError:
            pass
        sock.close()
    return open_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout to serve from")
    parser.add_argument("--hold", type=float, default=15.0)
    parser.add_argument("--slow-max", type=float, default=40.0)
    parser.add_argument("--flood-seconds", type=float, default=6.0)
    args = parser.parse_args()
    rport, port = free_port(), free_port()
    with redis_server(rport, "heads"):
        env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{rport}/0"}
        python = args.tree / ".venv" / "bin" / "python"
        service = subprocess.Popen(
            [str(python), "-m", "recsvc", "serve", "--port", str(port)],
            cwd=args.tree, env=env, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(200):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
            result: dict[str, object] = {"tree": str(args.tree)}
            result["flood_64x8MiB"] = flood(port, service.pid, args.flood_seconds)
            time.sleep(3)
            result["slow_head_held_s"] = slow_head(port, args.slow_max)
            result[f"slowloris_open_after_{args.hold:g}s_of_1000"] = slowloris(
                port, 1000, args.hold
            )
            print(json.dumps(result, indent=2))
        finally:
            service.terminate()
            service.wait(timeout=10)


if __name__ == "__main__":
    main()
