"""Scale benchmark: synthetic purchases at 1M-20M lines, and Complete Journey with its catalog.

    .venv/bin/python benchmarks/scale.py generate --lines 20000000 --customers 1000000 \
        --items 100000 --out benchmarks/out/synthetic-20M.parquet
    .venv/bin/python benchmarks/scale.py run --lines 1000000 5000000 20000000
    .venv/bin/python benchmarks/scale.py complete-journey

``run`` generates each size with ``training.samples.synthetic`` (once; files are kept in
benchmarks/out/), then trains it with ``python -m training train`` (evaluation, tuning,
gate and publish included) under ``/usr/bin/time -v`` into a fresh embedded Redis, and
records wall time, peak RSS, the trainer's per-stage seconds and peak MiB, and Redis
memory per item and per customer, in ``benchmarks/out/scale.json``; it prints a Markdown
table for ``benchmarks/results.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from training.samples.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
SHARED = ROOT.parent / "shared" / "data"


SYNTHETIC_COLUMNS = [
    "--customer-col", "customer_id", "--item-col", "item_id", "--order-col", "order_id",
    "--quantity-col", "quantity", "--timestamp-col", "timestamp", "--price-col", "price",
]  # fmt: skip


def _synthetic_file(lines: int, customers: int, items: int) -> tuple[Path, Path]:
    OUT.mkdir(parents=True, exist_ok=True)
    tag = f"{lines // 1_000_000}M" if lines >= 1_000_000 else str(lines)
    path = OUT / f"synthetic-{tag}.parquet"
    catalog = OUT / f"synthetic-{tag}-catalog.parquet"
    if not path.exists() or not catalog.exists():
        t0 = time.perf_counter()
        frame, cat = generate(lines, customers, items)
        frame.to_parquet(path, index=False)
        cat.to_parquet(catalog, index=False)
        print(f"generated {path.name}: {len(frame):,} lines in {time.perf_counter() - t0:.0f}s")
    return path, catalog


def complete_journey_catalog() -> Path:
    """Complete Journey's products as a catalog: category, brand, median unit price."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "complete_journey_catalog.parquet"
    if path.exists():
        return path
    products = pd.read_parquet(SHARED / "complete_journey_products.parquet")
    lines = pd.read_parquet(
        SHARED / "complete_journey_transactions.parquet",
        columns=["product_id", "quantity", "sales_value"],
    )
    lines = lines[(lines["quantity"] > 0) & (lines["sales_value"] > 0)]
    unit = (lines["sales_value"] / lines["quantity"]).groupby(lines["product_id"]).median()
    title = (
        products["product_type"].fillna(products["product_category"]).fillna("").astype(str)
        + " ("
        + products["brand"].fillna("").astype(str)
        + ")"
    )
    catalog = pd.DataFrame(
        {
            "item_id": products["product_id"].astype(np.int64),
            "title": title,
            "category": products["product_category"].fillna(products["department"]),
            "brand": products["brand"].fillna(""),
            "price": products["product_id"].map(unit).fillna(0.0).round(2),
            "available": True,
        }
    )
    catalog.to_parquet(path, index=False)
    return path


CJ_COLUMNS = [
    "--customer-col", "household_id", "--item-col", "product_id", "--order-col", "basket_id",
    "--quantity-col", "quantity", "--timestamp-col", "transaction_timestamp",
]  # fmt: skip


def _time_v(stderr: str) -> dict[str, float]:
    out: dict[str, float] = {}
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", stderr)
    if rss:
        out["peak_rss_mib"] = int(rss.group(1)) / 1024
    if wall:
        parts = [float(p) for p in wall.group(1).split(":")]
        out["wall_s"] = sum(p * 60**i for i, p in enumerate(reversed(parts)))
    return out


def _redis_memory(data_dir: Path) -> dict[str, float]:
    """Memory of the published version's keys: per item (lists) and per customer, with
    and without the customers' picks."""
    code = (
        "import redis, sys\n"
        "from recsvc.config import Settings\n"
        "from recsvc.store.embedded import redis_url_for\n"
        "from recsvc.model import Layout\n"
        "s = Settings()\n"
        "with redis_url_for(None, s.data_dir) as url:\n"
        "    r = redis.Redis.from_url(url)\n"
        "    lay = Layout(s.key_prefix)\n"
        "    v = r.get(lay.live).decode()\n"
        "    n_items = r.hlen(lay.neighbours(v))\n"
        "    n_cust = r.hlen(lay.customers(v))\n"
        "    lists = sum(r.memory_usage(k, samples=0) or 0 for k in\n"
        "                (lay.neighbours(v), lay.alternatives(v), lay.catalog(v), lay.items(v)))\n"
        "    cust = r.memory_usage(lay.customers(v), samples=0) or 0\n"
        "    used = r.info('memory')['used_memory']\n"
        "    bare = 'scale:histories-without-picks'\n"
        "    r.delete(bare)\n"
        "    cursor = 0\n"
        "    while True:\n"
        "        cursor, page = r.hscan(lay.customers(v), cursor, count=5000)\n"
        "        if page:\n"
        "            r.hset(bare, mapping={k: h.partition(b'\\x00')[0] for k, h in page.items()})\n"
        "        if not cursor:\n"
        "            break\n"
        "    without = r.memory_usage(bare, samples=0) or 0\n"
        "    r.delete(bare)\n"
        "    print(n_items, n_cust, lists, cust, used, without)\n"
    )
    env = {**os.environ, "RECSVC_DATA_DIR": str(data_dir)}
    got = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    n_items, n_cust, lists, cust, used, without = (int(x) for x in got)
    return {
        "redis_used_mib": used / 2**20,
        "bytes_per_item": lists / max(n_items, 1),
        "bytes_per_customer": cust / max(n_cust, 1),
        # The same histories without their picks (copied to a scratch hash and measured):
        # the picks' own cost, from one run.
        "bytes_per_customer_without_picks": without / max(n_cust, 1),
        "picks_bytes_per_customer": (cust - without) / max(n_cust, 1),
    }


def train(name: str, args: list[str], budget: str) -> dict[str, object]:
    """One ``train`` run under /usr/bin/time -v into a fresh embedded Redis."""
    with tempfile.TemporaryDirectory(prefix="recsvc-scale-") as tmp:
        env = {**os.environ, "RECSVC_DATA_DIR": tmp}
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "training", "train",
               "--memory-budget", budget, *args]  # fmt: skip
        print("$", " ".join(cmd[2:]), flush=True)
        log = OUT / f"{name}.log"
        with log.open("w") as err:  # progress streams here while it runs
            proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
                                  cwd=ROOT, check=False)  # fmt: skip
        proc.stderr = log.read_text()
        summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        result: dict[str, object] = {
            "name": name,
            "exit": proc.returncode,
            "budget": budget,
            "summary": summary,
            **_time_v(proc.stderr),
        }
        stages = dict(re.findall(r"(\w+)=([\d.]+s/\d+MiB)", summary))
        result["stages"] = stages
        if proc.returncode == 0:
            result.update(_redis_memory(Path(tmp)))
        else:
            result["stderr_tail"] = proc.stderr.strip().splitlines()[-25:]
        print(json.dumps(result, indent=1), flush=True)
        return result


def _record(results: list[dict[str, object]]) -> None:
    path = OUT / "scale.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update({str(r["name"]): r for r in results})
    path.write_text(json.dumps(old, indent=1))
    print(
        "\n| run | exit | wall | peak RSS | budget | Redis B/customer (without picks) "
        "| per stage (seconds/peak MiB) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        stages = " ".join(f"{k}={v}" for k, v in dict(r.get("stages", {})).items())  # type: ignore[call-overload]
        print(
            f"| {r['name']} | {r['exit']} | {float(r.get('wall_s', 0)):.0f} s "  # type: ignore[arg-type]
            f"| {float(r.get('peak_rss_mib', 0)):,.0f} MiB | {r['budget']} "  # type: ignore[arg-type]
            f"| {float(r.get('bytes_per_customer', 0)):,.0f} "  # type: ignore[arg-type]
            f"({float(r.get('bytes_per_customer_without_picks', 0)):,.0f}) | {stages} |"  # type: ignore[arg-type]
        )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="write one synthetic purchases file")
    g.add_argument("--lines", type=int, required=True)
    g.add_argument("--customers", type=int, required=True)
    g.add_argument("--items", type=int, required=True)
    g.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("run", help="generate and train each size, record the results")
    r.add_argument("--lines", type=int, nargs="+", default=[1_000_000, 5_000_000, 20_000_000])
    r.add_argument("--budget", default="8GiB")
    r.add_argument("--tune-budget", default="120")
    c = sub.add_parser("complete-journey", help="train Complete Journey with its catalog")
    c.add_argument("--budget", default="3.5GiB")
    c.add_argument("--tune-budget", default="60")
    args = p.parse_args()
    if args.command == "generate":
        frame, catalog = generate(args.lines, args.customers, args.items)
        frame.to_parquet(args.out, index=False)
        catalog.to_parquet(args.out.with_name(args.out.stem + "-catalog.parquet"), index=False)
        return
    if args.command == "run":
        results = []
        for lines in args.lines:
            # About 1M customers with purchases and 100k items at 20M lines (a fifth of
            # the ids drawn never order: long-tailed activity); smaller sets scale down.
            customers = max(1_000, lines // 15)
            items = max(1_000, min(100_000, lines // 200))
            path, catalog = _synthetic_file(lines, customers, items)
            name = f"synthetic-{lines // 1_000_000}M"
            results.append(
                train(
                    name,
                    [
                        "--purchases",
                        str(path),
                        "--catalog",
                        str(catalog),
                        *SYNTHETIC_COLUMNS,
                        "--tune-budget",
                        args.tune_budget,
                    ],
                    args.budget,
                )
            )
        _record(results)
        return
    catalog = complete_journey_catalog()
    purchases = SHARED / "complete_journey_transactions.parquet"
    result = train(
        "complete-journey",
        ["--purchases", str(purchases), "--catalog", str(catalog), *CJ_COLUMNS,
         "--tune-budget", args.tune_budget],
        args.budget,
    )  # fmt: skip
    _record([result])


if __name__ == "__main__":
    main()
