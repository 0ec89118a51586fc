"""The two training engines side by side, into a local 3-master Redis Cluster.

    .venv/bin/python -m benchmarks.engines online-retail
    .venv/bin/python -m benchmarks.engines synthetic-20M      # after benchmarks/scale.py

For each data set, one after the other (never at once: the machine has two cores):

- ``local``: the local engine with ``--method cooccurrence``, the method the Spark
  engine distributes, so the two evaluations compare the same model;
- ``spark``: ``--engine spark --spark-master local[2]``;
- ``local-default`` (Online Retail only): the local engine's default recipe (EASE with
  ALS), for reference.

Each is ``python -m training train`` (evaluation, gate, publish) under
``/usr/bin/time -v``; beside it a sampler adds up the resident memory of the whole
process tree twice a second (Spark's JVM is a child of the trainer, which ``time -v``
does not always count). Each run publishes under its own key prefix into a cluster
started by ``recsvc.store.localcluster``; after the Spark run, each master's memory and the
bytes of that version's keys on it are read. Results go to
``benchmarks/out/engines.json``; a Markdown table is printed for ``benchmarks/results.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis

from benchmarks.scale import OUT, SHARED, SYNTHETIC_COLUMNS, _time_v
from recsvc import model as lay
from recsvc.store import localcluster

ROOT = Path(__file__).resolve().parents[1]
PORT = 7400

DATASETS: dict[str, list[str]] = {
    "online-retail": [
        "--purchases",
        str(SHARED / "online_retail.parquet"),
        "--preset",
        "online-retail",
    ],
    "synthetic-20M": ["--purchases", str(OUT / "synthetic-20M.parquet"), *SYNTHETIC_COLUMNS],
}


def tree_rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and every descendant, in MiB (from /proc)."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total / 1024


def run(name: str, args: list[str], prefix: str, budget: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "RECSVC_REDIS_CLUSTER": "true",
        "REDIS_URL": f"redis://127.0.0.1:{PORT}",
        "RECSVC_KEY_PREFIX": prefix,
    }
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "training", "train",
           "--memory-budget", budget, *args]  # fmt: skip
    print("$", " ".join(cmd[2:]), flush=True)
    log = OUT / f"engines-{name}.log"
    peak = [0.0]
    with log.open("w") as err:
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT
        )
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.5):
                peak[0] = max(peak[0], tree_rss_mib(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, _ = proc.communicate()
        stop.set()
        sampler.join()
    stderr = log.read_text()
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    result: dict[str, Any] = {
        "name": name,
        "exit": proc.returncode,
        "summary": summary,
        "tree_peak_rss_mib": round(peak[0]),
        **_time_v(stderr),
        "stages": dict(re.findall(r"(\w+)=([\d.]+s/\d+MiB)", summary)),
    }
    if proc.returncode:
        result["stderr_tail"] = stderr.strip().splitlines()[-20:]
    print(json.dumps(result, indent=1), flush=True)
    return result


def evaluation(prefix: str) -> dict[str, Any]:
    """The live version's evaluation as its metadata keeps it, and its keys per master."""
    layout = lay.Layout.for_cluster(prefix)
    client = redis.cluster.RedisCluster(host="127.0.0.1", port=PORT)
    try:
        version = bytes(client.get(layout.live) or b"").decode()
        meta = json.loads(client.get(layout.meta(version)) or b"{}")
        shards = []
        for n in range(3):
            node = redis.Redis(port=PORT + n)
            keys = [k for k in node.scan_iter(match=layout.model_pattern, count=1000)
                    if layout.version_of(k.decode()) == version]  # fmt: skip
            used = sum(node.memory_usage(k, samples=0) or 0 for k in keys)
            shards.append(
                {
                    "port": PORT + n,
                    "version_keys": len(keys),
                    "version_mib": round(used / 2**20, 1),
                    "used_memory_mib": round(int(node.info("memory")["used_memory"]) / 2**20, 1),
                }
            )
            node.close()
        ev = meta.get("evaluation", {})
        return {
            "version": version,
            "served": ev.get("served"),
            "comparison": ev.get("comparison"),
            "shards": shards,
            "counts": meta.get("counts"),
        }
    finally:
        client.close()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("dataset", choices=sorted(DATASETS))
    p.add_argument("--budget", default="8GiB", help="the local engine's memory budget")
    p.add_argument("--spark-memory", default="6g", help="the Spark driver's memory (local[2])")
    p.add_argument("--spark-conf", action="append", default=[], help="more Spark settings")
    p.add_argument("--only", choices=("local", "spark"), help="run one engine only")
    a = p.parse_args()
    data = DATASETS[a.dataset]
    runs = [
        ("local", [*data, "--method", "cooccurrence"]),
        ("spark", [*data, "--engine", "spark", "--spark-master", "local[2]",
                   "--spark-conf", f"spark.driver.memory={a.spark_memory}",
                   *[x for c in a.spark_conf for x in ("--spark-conf", c)]]),
    ]  # fmt: skip
    if a.only:
        runs = [r for r in runs if r[0] == a.only]
    if a.dataset == "online-retail":
        runs.append(("local-default", list(data)))
    results = {}
    with tempfile.TemporaryDirectory(prefix="recsvc-engines-") as tmp:
        localcluster.start(Path(tmp), PORT)
        try:
            for name, args in runs:
                prefix = f"bench-{a.dataset}-{name}"
                result = run(f"{a.dataset}-{name}", args, prefix, a.budget)
                if result["exit"] == 0:
                    result["evaluation"] = evaluation(prefix)
                results[name] = result
        finally:
            localcluster.stop(PORT)
    path = OUT / "engines.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    kept = old.get(a.dataset, {}).get("runs", {}) if a.only else {}
    old[a.dataset] = {"date": time.strftime("%Y-%m-%d"), "runs": {**kept, **results}}
    path.write_text(json.dumps(old, indent=1))
    print(
        "\n| engine | exit | wall | peak RSS (time -v) | peak RSS (tree) | cart HR@10 "
        "| next recall@10 |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        served = (r.get("evaluation") or {}).get("served") or {}
        print(
            f"| {name} | {r['exit']} | {r.get('wall_s', 0):.0f} s "
            f"| {r.get('peak_rss_mib', 0):,.0f} MiB "
            f"| {r['tree_peak_rss_mib']:,} MiB | {served.get('cart_hr@10', float('nan')):.4f} "
            f"| {served.get('next_recall@10', float('nan')):.4f} |"
        )
    spark = (results.get("spark", {}).get("evaluation") or {}).get("shards")
    if spark:
        print("\n| master | keys of the version | their memory | used_memory |")
        print("|---|---|---|---|")
        for s in spark:
            print(
                f"| :{s['port']} | {s['version_keys']} | {s['version_mib']} MiB "
                f"| {s['used_memory_mib']} MiB |"
            )


if __name__ == "__main__":
    main()
