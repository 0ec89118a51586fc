"""What a stored history keeps, chosen on the validation window.

    .venv/bin/python -m benchmarks.history_choice [online-retail|complete-journey]

The e-mail path ranks from the history the trainer stores per customer. This fits the
default recipe before Online Retail's validation window (the reported window of
``evaluate`` is dropped, never read) and scores next purchases, as served, from stored
histories built several ways: the latest N distinct items or the N heaviest (orders x
the decay of the latest purchase's age), with or without each item's orders; then the
100 heaviest with each repurchase scale (how much a bought item's own weight counts
against its complements'). Prints recall@10 and its paired interval against a
customer's own past purchases; writes ``benchmarks/out/history_choice-<data set>.json``.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd

from benchmarks.design import design, parser
from benchmarks.scale import OUT
from training.engines.local import fit
from training.evaluation import evaluate as ev
from training.evaluation import intervals
from training.evaluation import recommenders as recs
from training.stages import ingest, matrices
from training.stages.histories import SELECTION_HALF_LIFE_DAYS

History = tuple[list[str], list[int], list[int]]


def stored(train: pd.DataFrame, limit: int, by: str, counts: bool) -> dict[str, History]:
    frame = pd.DataFrame(
        {
            "c": train[ingest.CUSTOMER].astype(str).to_numpy(),
            "i": train[ingest.ITEM].astype(str).to_numpy(),
            "o": train[ingest.ORDER].astype(str).to_numpy(),
            "d": train[ingest.TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
            // 86_400_000_000_000,
        }
    )
    per = frame.groupby(["c", "i"]).agg(d=("d", "max"), n=("o", "nunique")).reset_index()
    latest = per.groupby("c")["d"].transform("max")
    per["w"] = per["n"] * 0.5 ** ((latest - per["d"]) / SELECTION_HALF_LIFE_DAYS)
    key = ["c", "w", "d", "i"] if by == "weight" else ["c", "d", "i"]
    ascending = [True, False, False, True] if by == "weight" else [True, False, True]
    per = per.sort_values(key, ascending=ascending, kind="stable")
    per = per[per.groupby("c").cumcount() < limit].sort_values(
        ["c", "d", "i"], ascending=[True, False, True], kind="stable"
    )
    out: dict[str, History] = {}
    for c, g in per.groupby("c", sort=False):
        n = g["n"].tolist() if counts else [1] * len(g)
        out[str(c)] = (g["i"].tolist(), [int(d) for d in g["d"]], [int(x) for x in n])
    return out


def main() -> None:
    a = parser(__doc__).parse_args()
    d = design(a.dataset)
    config, quiet = d.config, d.stages
    train, cases = d.train, d.window.cases
    payload = fit(train, config, quiet, for_serving=False)
    inter = matrices.build(train)
    pop = matrices.popularity(inter).astype(float)
    past = ev.evaluate(recs.past_purchases_recommender(inter.n_items, pop), cases)
    base = past.per_case["next/recall@10"]
    rows = {}
    print(f"{'stored history':46s} {'recall@10':>9s}  vs past purchases (95% interval)")
    print(f"{'past purchases (full history)':46s} {base.mean():9.4f}")
    strong = payload.meta["serving"]["repurchase_weight"] / config.repurchase_scale
    variants = [(50, "latest", False, 1.0), (50, "latest", True, 1.0), (50, "weight", True, 1.0)]
    variants += [(100, "weight", True, x) for x in (1.0, 3.0, 10.0, 30.0)]
    variants += [(200, "weight", True, 1.0)]
    for limit, by, counts, scale in variants:
        name = f"{limit} {by}, {'with' if counts else 'without'} orders, scale {scale:g}"
        meta = {
            **payload.meta,
            "serving": {**payload.meta["serving"], "repurchase_weight": strong * scale},
        }
        variant = replace(payload, histories=stored(train, limit, by, counts), meta=meta)
        got = ev.evaluate(ev.served_from_payload(variant), cases, tasks=frozenset({ev.NEXT}))
        mine = got.per_case["next/recall@10"]
        iv = intervals.paired(mine, base)
        rows[name] = {"recall@10": float(mine.mean()), "vs_past": iv.as_dict()}
        print(f"{name:46s} {mine.mean():9.4f}  {iv.mean:+.4f} ({iv.low:+.4f} to {iv.high:+.4f})")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"history_choice-{a.dataset}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
