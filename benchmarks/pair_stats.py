"""How complements and alternatives are bought later: the numbers behind the alternatives'
cap on orders together.

    .venv/bin/python -m benchmarks.pair_stats [online-retail]

On the validation window (the reported window of ``evaluate`` is dropped, never read):
train before the window, then, for every item bought in the window, its top-10
complements and its top-10 alternatives under each cap on how often two alternatives may
share an order (``training.neighbours.alternatives.alternatives``'s ``max_together``). Of those
pairs (i, j), the share where some order of the window holds both, and the share where a
customer of the window bought both in different orders. Complements should come out
bought together; alternatives bought by the same customers but not together. Writes
``benchmarks/out/pair_stats.json``.
"""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pandas as pd

from benchmarks.design import design, parser
from benchmarks.scale import OUT
from training.engines.local import fit
from training.neighbours.alternatives import alternatives
from training.neighbours.base import Neighbours
from training.stages import ingest, matrices
from training.stages.als import train_als

CAPS = (0.0, 0.05, 0.2)
TOP = 10


def shares(nb: Neighbours, items: np.ndarray, frame: pd.DataFrame) -> dict[str, float]:
    """Of each bought item's top-10 pairs: bought in one order; by one customer apart."""
    index = {str(i): n for n, i in enumerate(items)}
    orders: dict[str, set[int]] = defaultdict(set)
    by_customer: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for customer, order, item in zip(
        frame[ingest.CUSTOMER].astype(str),
        frame[ingest.ORDER].astype(str),
        frame[ingest.ITEM].astype(str),
        strict=True,
    ):
        at = index.get(item)
        if at is None:
            continue
        orders[order].add(at)
        by_customer[customer][at].add(order)
    together: set[tuple[int, int]] = set()
    for basket in orders.values():
        for i in basket:
            for j in basket:
                if i != j:
                    together.add((i, j))
    apart: set[tuple[int, int]] = set()
    bought: set[int] = set()
    for per_item in by_customer.values():
        bought.update(per_item)
        for i, oi in per_item.items():
            for j, oj in per_item.items():
                # Each in an order without the other: bought apart.
                if i != j and oi - oj and oj - oi:
                    apart.add((i, j))
    pairs = [(i, int(j)) for i in sorted(bought) for j, s in zip(*nb.row(i), strict=True) if s > 0]
    pairs = [p for p in pairs if p[1] != p[0]]
    top: dict[int, list[int]] = defaultdict(list)
    for i, j in pairs:
        if len(top[i]) < TOP:
            top[i].append(j)
    flat = [(i, j) for i, js in top.items() for j in js]
    n = max(len(flat), 1)
    return {
        "pairs": len(flat),
        "same_order": sum(p in together for p in flat) / n,
        "same_customer_other_orders": sum(p in apart for p in flat) / n,
    }


def main() -> None:
    a = parser(__doc__).parse_args()
    d = design(a.dataset)
    config, quiet = d.config, d.stages
    train, test = d.train, d.window.split.test
    payload = fit(train, config, quiet, for_serving=False)
    inter = matrices.build(train)
    factors = train_als(matrices.weight(inter.customer_item, config.weighting), config.als)
    rows = {"complements": shares(payload.neighbours, inter.items, test)}
    for cap in CAPS:
        alts = alternatives(
            inter.customer_item, inter.order_item, factors, config.alternatives_n,
            max_together=cap,
        )  # fmt: skip
        rows[f"alternatives, cap {cap:.0%}"] = shares(alts, inter.items, test)
    print(f"{'top-10 pairs':28s} {'pairs':>8s} {'same order':>11s} {'same customer, apart':>21s}")
    for name, r in rows.items():
        print(
            f"{name:28s} {r['pairs']:8,.0f} {r['same_order']:11.1%} "
            f"{r['same_customer_other_orders']:21.1%}"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "pair_stats.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
