"""The quality tables: ``python -m training evaluate`` on Online Retail and Complete Journey.

    .venv/bin/python -m benchmarks.quality online-retail complete-journey [--tune-budget 120]

Each data set runs the project's own evaluation under ``/usr/bin/time -v``: the served
model's parameters and every baseline's settings searched on the validation window with
the same budget, the reported window scored once, three hide-one seeds for carts, the
upsell slot scored against in-band picks. Complete Journey gets its catalog (departments
and prices, ``benchmarks/scale.py``). The printout and report of each run are kept in
``benchmarks/out/quality-<data set>/`` (``evaluate.log``, ``report.json``,
``report.html``); this prints the comparison lines, wall time and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.engines import DATASETS
from benchmarks.scale import CJ_COLUMNS, OUT, ROOT, SHARED, _time_v, complete_journey_catalog

DATA_SETS = ("online-retail", "complete-journey")


def arguments(dataset: str) -> list[str]:
    if dataset == "complete-journey":
        return [
            "--purchases",
            str(SHARED / "complete_journey_transactions.parquet"),
            "--catalog",
            str(complete_journey_catalog()),
            *CJ_COLUMNS,
        ]
    return DATASETS[dataset]


def run(dataset: str, budget: str, extra: list[str]) -> dict[str, object]:
    out = OUT / f"quality-{dataset}"
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        "/usr/bin/time", "-v", str(Path(sys.executable)), "-m", "training", "evaluate",
        *arguments(dataset), "--tune-budget", budget, "--out", str(out), *extra,
    ]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    (out / "evaluate.log").write_text(done.stdout + "\n--- stderr ---\n" + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"{dataset}: exit {done.returncode}\n{done.stderr[-3000:]}")
    usage = _time_v(done.stderr)
    report = json.loads((out / "report.json").read_text())
    return {
        "dataset": dataset,
        "wall_s": round(wall, 1),
        **usage,
        "comparison": report["comparison"],
        "upsell": report["upsell"].get("against", {}),
        "stdout": done.stdout,
    }


def _cell(method: dict[str, Any], key: str, head: str) -> str:
    if head not in method["headline"]:
        return "-"
    low, high = method["intervals"].get(key, (float("nan"), float("nan")))
    return f"{method['headline'][head]:.3f} ({low:.3f} to {high:.3f})"


def markdown(report: dict[str, Any]) -> str:
    """The report's methods as the README's and results' table: each measure with its
    95% bootstrap interval, and the cart's range over the hide-one seeds."""
    rows = [
        "| method | cart HR@10 | cart, 3 seeds | next recall@10 | next (new items) recall@10 |",
        "|---|---|---|---|---|",
    ]
    for m in report["methods"]:
        spread = m["seed_spread"].get("cart/hr@10")
        rows.append(
            f"| {m['name']} | {_cell(m, 'cart/hr@10', 'cart_hr@10')} | "
            + (f"{spread[0]:.3f} to {spread[1]:.3f}" if spread else "-")
            + f" | {_cell(m, 'next/recall@10', 'next_recall@10')} | "
            f"{_cell(m, 'next_new/recall@10', 'next_new_recall@10')} |"
        )
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("datasets", nargs="+", choices=DATA_SETS)
    p.add_argument("--tune-budget", default="120")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="more evaluate flags, after --")
    a = p.parse_args()
    extra = [x for x in a.extra if x != "--"]
    for dataset in a.datasets:
        got = run(dataset, a.tune_budget, extra)
        print(f"== {dataset}: {got['wall_s']} s wall, peak RSS {got.get('peak_rss_mib')} MiB")
        print(str(got.pop("stdout")))
        report = json.loads((OUT / f"quality-{dataset}" / "report.json").read_text())
        print(markdown(report))
        (OUT / f"quality-{dataset}" / "summary.json").write_text(json.dumps(got, indent=1))


if __name__ == "__main__":
    main()
