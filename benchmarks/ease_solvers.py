"""Exact EASE against local EASE (and its candidate count), in the project's evaluation.

    .venv/bin/python benchmarks/ease_solvers.py online-retail 32 64
    .venv/bin/python benchmarks/ease_solvers.py complete-journey 32 48 64

Each line scores the served model (``ease-als``, default parameters, default split, no
tuning) with one EASE solver: ``dense`` is exact EASE (only where it fits the memory),
``localK`` is local EASE over K co-occurring and K high-cosine candidates per item. The
README's "Choosing the neighbours" quotes these numbers.
"""

from __future__ import annotations

import dataclasses
import io
import sys
import time
from pathlib import Path

from training.engines.local import Stages, TrainConfig, load
from training.evaluation import evaluate as ev
from training.evaluation.assessment import EvalOptions, assess
from training.memory import Budget
from training.neighbours import ease as neighbours
from training.neighbours.ease import dense_ease_bytes
from training.stages import ingest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATASETS = {
    "online-retail": (
        SHARED / "online_retail.parquet",
        ingest.PRESETS["online-retail"],
        ingest.CleaningRules(non_product_pattern=ingest.ONLINE_RETAIL_NON_PRODUCT_PATTERN),
    ),
    "complete-journey": (
        SHARED / "complete_journey_transactions.parquet",
        ingest.Columns(
            customer="household_id",
            item="product_id",
            order="basket_id",
            quantity="quantity",
            timestamp="transaction_timestamp",
        ),
        ingest.CleaningRules(),
    ),
}


def main() -> None:
    name, *ks = sys.argv[1:]
    path, columns, cleaning = DATASETS[name]
    config = TrainConfig(columns=columns, cleaning=cleaning)
    frame, _ = load(path, config, Stages(io.StringIO()))
    n_items = int(frame[ingest.ITEM].nunique())
    runs = [("dense", 64)] if dense_ease_bytes(n_items) < 16 << 30 else []
    runs += [(f"local{k}", int(k)) for k in ks]
    budget = Budget(20 << 30)
    for label, k in runs:
        # The trainer picks the solver from the memory estimate; here it is imposed.
        neighbours.ease_solver = lambda n, m, solver=label[:5]: solver
        started = time.perf_counter()
        chosen = dataclasses.replace(config, ease_candidates=k)
        got = assess(frame, chosen, Stages(io.StringIO(), budget), EvalOptions(), False)
        head = {m: round(v, 4) for m, v in ev.headline(got.served()).items()}
        print(f"{name} {label}: {time.perf_counter() - started:.0f}s {head}", flush=True)


if __name__ == "__main__":
    main()
