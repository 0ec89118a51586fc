"""Request heads over real sockets: their size, their header count and their deadline, on
both of uvicorn's HTTP paths (httptools, h11); and the worker's memory under many
unfinished heads, measured from outside its process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from recsvc.api.protocol import JSONErrorsH11Protocol, JSONErrorsHttpToolsProtocol
from recsvc.config import HeadLimits, Settings
from tests.conftest import free_port, uvicorn_server

LIMITS = HeadLimits(max_bytes=8192, max_count=20, timeout_s=1.0)
PROTOCOLS: dict[str, Any] = {"httptools": JSONErrorsHttpToolsProtocol, "h11": JSONErrorsH11Protocol}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=sorted(PROTOCOLS))
def port(request: pytest.FixtureRequest, settings: Settings) -> Iterator[int]:
    with uvicorn_server(settings, PROTOCOLS[request.param], LIMITS) as url:
        yield int(url.rsplit(":", 1)[1])


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(5)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Each response in ``raw``: status, headers, body (by Content-Length)."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
        }
        length = int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:length]))
        raw = rest[length:]
    return out


def error_code(body: bytes) -> str:
    return str(orjson.loads(body)["error"]["code"])


def test_an_oversized_unfinished_head_gets_431_and_the_connection_closes(port: int) -> None:
    with connect(port) as sock:
        # A header line that never ends: more than the cap, no end of head in sight.
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000)
        raw = read_all(sock)
    [(status, headers, body)] = responses(raw)
    assert status == 431
    assert headers["connection"] == "close"
    assert headers["content-type"] == "application/json"
    assert error_code(body) == "request_header_too_large"


def test_a_complete_head_over_the_cap_gets_431(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
        [(status, _, body)] = responses(read_all(sock))
    assert status == 431 and error_code(body) == "request_header_too_large"


def test_too_many_headers_get_431(port: int) -> None:
    headers = b"".join(b"X-H%d: 1\r\n" % i for i in range(LIMITS.max_count + 1))
    with connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        [(status, _, body)] = responses(read_all(sock))
    assert status == 431
    assert "headers" in orjson.loads(body)["error"]["message"]


def test_heads_within_the_limits_are_served(port: int) -> None:
    with connect(port) as sock:
        many = b"".join(b"X-H%d: 1\r\n" % i for i in range(LIMITS.max_count - 2))
        big = b"X-Big: " + b"a" * (LIMITS.max_bytes - 600) + b"\r\n"
        # Two requests pipelined in one write, the second near the cap in bytes.
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + big + b"Connection: close\r\n\r\n"
        )
        got = responses(read_all(sock))
    assert [status for status, _, _ in got] == [200, 200]


def test_a_body_larger_than_the_head_cap_is_no_head(port: int, settings: Settings) -> None:
    """Head and body in one write: the bytes after the head are the body's, not the head's."""
    body = orjson.dumps({"items": ["x" * 20] * 90, "k": 5, "pad": "p" * 30_000})
    with connect(port) as sock:
        sock.sendall(
            b"POST /v1/recommendations/cart HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )
        [(status, _, answer)] = responses(read_all(sock))
    assert status == 422, answer  # the unknown field "pad": the body was read as a body


def test_a_slow_head_is_cut_off_at_the_deadline(port: int) -> None:
    with connect(port) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):  # a byte now and then, never the end of the head
            time.sleep(0.2)
            sock.sendall(b"X")
        raw = read_all(sock)
        held = time.monotonic() - started
    [(status, _, body)] = responses(raw)
    assert status == 408 and error_code(body) == "request_timeout"
    # Counted from the connection's start (just before this clock), plus the lingering close.
    assert LIMITS.timeout_s * 0.8 <= held < LIMITS.timeout_s + 3


def test_a_silent_connection_is_closed_at_the_deadline(port: int) -> None:
    with connect(port) as sock:
        started = time.monotonic()
        assert read_all(sock) == b""
        assert LIMITS.timeout_s * 0.8 <= time.monotonic() - started < LIMITS.timeout_s + 2


def test_each_request_of_a_kept_connection_gets_the_deadline_anew(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        time.sleep(LIMITS.timeout_s * 0.6)
        # The first request was answered in time; a second one that stalls is cut off.
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        [(status, _, _)] = responses(read_all(sock))
        assert status == 408
        assert time.monotonic() - started >= LIMITS.timeout_s * 0.9


def test_a_client_still_sending_reads_the_refusal(port: int) -> None:
    """The refusal is a lingering close: bytes sent after it are dropped, not reset."""
    with connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000)
        try:
            for _ in range(10):
                sock.sendall(b"a" * 10_000)
        except OSError:
            pass
        [(status, _, _)] = responses(read_all(sock))
    assert status == 431


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _flood(port: int, size: int, stop: threading.Event) -> None:
    """One client sending a header of ``size`` bytes that never ends, until refused."""
    chunk = b"a" * 65536
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Flood: ")
            sent = 0
            while sent < size and not stop.is_set():
                sock.sendall(chunk)
                sent += len(chunk)
            stop.wait(2)
    except OSError:
        pass  # refused and closed: what the limit is for


@pytest.mark.slow
def test_64_unfinished_8_mib_heads_stay_within_50_mib_of_idle(redis_url: str) -> None:
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "RECSVC_KEY_PREFIX": "head-flood"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.serve_worker", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        pid = int(proc.stdout.readline().split()[1])
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the service did not start"
                time.sleep(0.05)
        idle = _rss_kib(pid)
        stop = threading.Event()
        clients = [
            threading.Thread(target=_flood, args=(port, 8 << 20, stop), daemon=True)
            for _ in range(64)
        ]
        for client in clients:
            client.start()
        peak, until = idle, time.monotonic() + 4
        while time.monotonic() < until:
            peak = max(peak, _rss_kib(pid))
            time.sleep(0.02)
        stop.set()
        for client in clients:
            client.join(timeout=10)
        # Still serving after the flood.
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    grown_mib = (peak - idle) / 1024
    print(f"worker RSS idle {idle / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB under the flood")
    assert grown_mib < 50, f"RSS grew {grown_mib:.0f} MiB under 64 unfinished heads"
