"""The full cart answer against the stack's ceiling and floor, in one run.

For each data set: train into its own redis-server, start three one-worker uvicorn apps
pinned to core 0 (recsvc, ``ceiling_app``, the HMGET-only ``baseline_app``), then drive
each with wrk on core 1, alternating, ``--rounds`` times:
- the same four popular items (every list long) at 1 and 16 connections;
- 2,000 varied carts of 1 to 8 items (from stored customers' histories) at 16.
Prints req/s, p50 and p99 per app, the ratios to the ceiling, and each server's CPU per
request (the ceiling's over recsvc's: above 1 means recsvc does the answer for less).
Then recsvc alone: half load, a stored customer with 50 items and the longest one, and
``RECSVC_WORKERS=2``. Writes benchmarks/out/cart_speed.json. Needs wrk (``apt-get
install wrk``) and taskset.

Usage: .venv/bin/python -m benchmarks.cart_speed [online-retail] [complete-journey]
           [--seconds 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.harness import live_model, redis_server, service_env
from benchmarks.scale import CJ_COLUMNS, SHARED, complete_journey_catalog
from recsvc.model import decode_history, decode_lists

ROOT = Path(__file__).resolve().parent.parent
BEFORE: Path | None = None
"""``--before``: the checkout the 'before' app is served from."""
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


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and its descendants (uvicorn's workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    family, total, grew = {pid}, 0.0, True
    while grew:
        grew = False
        for child, (parent, _) in stats.items():
            if parent in family and child not in family:
                family.add(child)
                grew = True
    for member in family:
        total += stats.get(member, (0, 0.0))[1]
    return total


def wrk(
    port: int,
    conns: int,
    seconds: float,
    script: Path,
    path: str = "/v1/recommendations/cart",
    pid: int | None = None,
    cores: str = "1",
) -> dict[str, float]:
    """wrk's req/s, p50 and p99; with ``pid``, also the server's CPU per request (µs):
    less moved by a shared machine than req/s, and what throughput is made of."""
    before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(
        ["taskset", "-c", cores, "wrk", "-t1", f"-c{conns}", f"-d{int(seconds)}s", "--latency",
         "-s", str(script), f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    spent = cpu_seconds(pid) - before if pid else 0.0
    got: dict[str, float] = {}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec"):
            got["rps"] = float(parts[1])
        elif parts[:1] in (["50%"], ["99%"]):
            got["p" + parts[0].rstrip("%")] = _ms(parts[1])
        elif "Non-2xx" in line:
            got["non_2xx"] = float(parts[-1])
        elif "requests in" in line and pid:
            got["cpu_us_per_request"] = round(spent / max(int(parts[0]), 1) * 1e6, 1)
    return got


def _ms(value: str) -> float:
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * scale
    raise ValueError(value)


def bench(name: str, seconds: float, rounds: int, port_base: int) -> dict[str, Any]:
    with redis_server(port_base, f"speed-{name}") as work:
        return _bench(name, seconds, rounds, port_base, work)


def _start(
    cmd: list[str], env: dict[str, str], port: int, work: Path, name: str, cores: str = "0"
) -> subprocess.Popen[bytes]:
    log = open(work / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    pinned = ["taskset", "-c", cores, *cmd]
    cwd = BEFORE if name == "before" and BEFORE is not None else ROOT
    return subprocess.Popen(pinned, env={**env, "RECSVC_PORT": str(port)}, cwd=cwd, stderr=log)


def _wait(port: int, body: str) -> None:
    for _ in range(150):
        try:
            answer = httpx.post(
                f"http://127.0.0.1:{port}/v1/recommendations/cart",
                content=body,
                headers={"content-type": "application/json"},
            )
            if answer.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"nothing answers on port {port}")


def _carts_script(work: Path, bodies: list[str]) -> Path:
    """A wrk script sending ``bodies`` in turn (each connection from its own offset)."""
    script = work / "carts.lua"
    table = ",\n".join(json.dumps(b) for b in bodies)
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"local bodies = {{\n{table}\n}}\n"
        "local n = math.random(#bodies)\n"
        "function request()\n  n = n % #bodies + 1\n"
        "  return wrk.format(nil, nil, nil, bodies[n])\nend\n"
    )
    return script


def _real_carts(r: Any, layout: Any, version: str, items: list[Any], n: int) -> list[str]:
    """``n`` carts of 1 to 8 items the model knows, from stored customers' histories (the
    items bought together lately): as varied as a storefront's carts."""
    customers = r.hkeys(layout.customers(version))[: 4 * n]
    histories = r.hmget(layout.customers(version), customers)
    rnd = random.Random(11)
    known = set(items)
    bodies = []
    for raw in histories:
        bought = [i for i in decode_history(raw)[0] if i in known]
        if bought:
            size = min(len(bought), rnd.choice([1, 1, 2, 2, 3, 4, 6, 8]))
            bodies.append(json.dumps({"items": bought[:size], "k": 10}))
        if len(bodies) == n:
            break
    return bodies


def _ratios(runs: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    rec, ceil = runs["recsvc"], runs["ceiling"]
    return {
        "rps_median": {a: statistics.median(x["rps"] for x in v) for a, v in runs.items()},
        "recsvc_over_ceiling": [a["rps"] / b["rps"] for a, b in zip(rec, ceil, strict=True)],
        "ceiling_cpu_over_recsvc_cpu": [
            b["cpu_us_per_request"] / a["cpu_us_per_request"]
            for a, b in zip(rec, ceil, strict=True)
        ],
        "recsvc_p50_ms": [x.get("p50") for x in rec],
        "recsvc_p99_ms": [x.get("p99") for x in rec],
        "ceiling_p50_ms": [x.get("p50") for x in ceil],
        **(
            {
                "recsvc_over_before": [
                    a["rps"] / b["rps"] for a, b in zip(rec, runs["before"], strict=True)
                ]
            }
            if "before" in runs
            else {}
        ),
    }


def _print_ratios(name: str, what: str, summary: dict[str, Any]) -> None:
    per = summary["rps_median"]
    if "recsvc_over_before" in summary:
        print(
            f"{name} {what}: recsvc {per['recsvc']:.0f} req/s, before {per['before']:.0f}; "
            "recsvc/before " + ", ".join(f"{x:.2f}" for x in summary["recsvc_over_before"]),
            flush=True,
        )
    print(
        f"{name} {what}: recsvc {per['recsvc']:.0f} req/s, ceiling {per['ceiling']:.0f}, floor "
        f"{per['floor']:.0f}; recsvc/ceiling "
        + ", ".join(f"{x:.2f}" for x in summary["recsvc_over_ceiling"])
        + "; ceiling CPU per request / recsvc's "
        + ", ".join(f"{x:.2f}" for x in summary["ceiling_cpu_over_recsvc_cpu"]),
        flush=True,
    )


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
        varied = _carts_script(work, _real_carts(r, layout, version, items, 2000))
        ports, pids = {}, {}
        for n, (app, cmd) in enumerate(APPS.items(), start=1):
            port = rport + n
            args = cmd + (["--port", str(port), "--log-level", "warning", "--no-access-log"]
                          if app not in ("recsvc", "before") else [])  # fmt: skip
            proc = _start(args, env, port, work, app)
            procs.append(proc)
            ports[app], pids[app] = port, proc.pid
        for port in ports.values():
            _wait(port, body)
        summary: dict[str, Any] = {"data": name, "cart": cart, "items": len(items)}
        for label, lua, conns_list in (("cart", script, (1, 16)), ("varied", varied, (16,))):
            if label == "varied":  # every app reads each cart once before the runs
                for port in ports.values():
                    wrk(port, 16, 3, lua)
            for conns in conns_list:
                runs: dict[str, list[dict[str, float]]] = {a: [] for a in APPS}
                for _ in range(rounds):
                    for app, port in ports.items():
                        got = wrk(port, conns, seconds, lua, pid=pids[app])
                        runs[app].append(got)
                        print(f"{name} {label} {app:8s} c{conns:<2d} {got}", flush=True)
                key = f"c{conns}" if label == "cart" else f"varied_c{conns}"
                summary[key] = {"runs": runs, **_ratios(runs)}
                what = f"c{conns}" if label == "cart" else f"2,000 varied carts c{conns}"
                _print_ratios(name, what, summary[key])
        # Half of recsvc's saturated throughput, paced by wrk's delay() (each of the 16
        # connections waits between requests): the latency a busy storefront sees.
        half = summary["c16"]["rps_median"]["recsvc"] / 2
        paced = work / "cart_paced.lua"
        paced.write_text(script.read_text() + f"function delay() return {16000 / half:.1f} end\n")
        got = wrk(ports["recsvc"], 16, seconds, paced)
        summary["half_load"] = {"target_rps": half, **got}
        print(f"{name} recsvc at half load ({half:.0f} req/s target): {got}", flush=True)
        summary["customers"] = _customers(r, layout, version, ports, pids, summary, seconds, work)
        summary["workers"] = _two_workers(env, rport + 9, work, body, script, seconds, summary)
        return summary
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _customers(
    r: Any,
    layout: Any,
    version: str,
    ports: dict[str, int],
    pids: dict[str, int],
    summary: dict[str, Any],
    seconds: float,
    work: Path,
) -> dict[str, Any]:
    """``GET /v1/customers/{id}/recommendations`` for a stored customer with 50 items
    (the issue's case) and for the longest history, against the ceiling's cart."""
    customers = r.hkeys(layout.customers(version))[:5000]
    sizes = [
        (c.decode(), len(decode_history(h)[0]))
        for c, h in zip(customers, r.hmget(layout.customers(version), customers), strict=True)
    ]
    fifty = min(sizes, key=lambda x: (abs(x[1] - 50), x[0]))
    longest = max(sizes, key=lambda x: x[1])
    get = work / "customer.lua"
    get.write_text('wrk.method = "GET"\n')
    out: dict[str, Any] = {}
    for customer, size in (fifty, longest):
        path = f"/v1/customers/{customer}/recommendations"
        entry: dict[str, Any] = {"id": customer, "history_items": size}
        for conns in (1, 16):
            got = wrk(ports["recsvc"], conns, seconds, get, path, pid=pids["recsvc"])
            ceiling = summary[f"c{conns}"]["rps_median"]["ceiling"]
            cart = summary[f"c{conns}"]["rps_median"]["recsvc"]
            entry[f"c{conns}"] = {
                **got,
                "over_ceiling_cart": got["rps"] / ceiling,
                "over_recsvc_cart": got["rps"] / cart,
            }
            print(
                f"customer ({size} items) c{conns}: {got}; over the ceiling's cart "
                f"{got['rps'] / ceiling:.2f}, over recsvc's cart {got['rps'] / cart:.2f}",
                flush=True,
            )
        out[str(size)] = entry
    return out


def _two_workers(
    env: dict[str, str],
    port: int,
    work: Path,
    body: str,
    script: Path,
    seconds: float,
    summary: dict[str, Any],
) -> dict[str, Any]:
    """``RECSVC_WORKERS=2`` on both cores, wrk on both too (this machine has two): what
    two workers give here, and their CPU per request against one worker's."""
    proc = _start(
        [PY, "-m", "recsvc", "serve"], {**env, "RECSVC_WORKERS": "2"}, port, work, "two", "0,1"
    )
    try:
        _wait(port, body)
        got = wrk(port, 16, seconds, script, pid=proc.pid, cores="0,1")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    one = summary["c16"]["rps_median"]["recsvc"]
    print(f"RECSVC_WORKERS=2, wrk sharing the cores: {got}; over one worker {got['rps'] / one:.2f}")
    return {**got, "over_one_worker": got["rps"] / one}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="*", default=["online-retail"])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--port-base", type=int, default=8400)
    ap.add_argument(
        "--before",
        type=Path,
        help="another checkout of recsvc (same dependencies) served beside this one, "
        "alternating, as 'before': its `python -m recsvc serve` run from that tree",
    )
    args = ap.parse_args()
    if args.before is not None:
        global BEFORE
        BEFORE = args.before.resolve()
        APPS["before"] = [PY, "-m", "recsvc", "serve"]
    results = [
        bench(name, args.seconds, args.rounds, args.port_base + 10 * n)
        for n, name in enumerate(args.data)
    ]
    out = ROOT / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "cart_speed.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
