"""Stage 5: offline evaluation on a temporal holdout, with baselines, in one run.

Two tasks, one per caller:
- cart completion (the cart widget): every test order with at least two items the model
  knows; one item is hidden (seeded), the rest is the cart; where does the hidden one rank?
- next purchases (the e-mail generator): every customer with purchases on both sides of
  the cutoff; from the history before it, which items bought after it are found? Scored
  with repurchases counted (the recommender may suggest what was bought before) and
  without (only new items count, and bought items are excluded).

"served" runs the service's own ranking (``recsvc.answers.recommend``) on the neighbour lists
the trainer would publish, so the number measured is the number users get: carts with
their quantities, next purchases from the histories the trainer stores (as the e-mail
path reads them). The tuned baselines are ``training.evaluation.baselines``; the upsell slot is
scored in ``training.stages.upsell``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from recsvc import model as lay
from recsvc.answers import recommend as rec
from recsvc.config import Settings
from recsvc.ranking import SOURCE_POPULAR, Ranking
from recsvc.store import ItemList, ModelView, StoredHistory
from training.evaluation.cases import CartCase, Cases, HistoryCase
from training.evaluation.recommenders import K_MAIN, KS, TOP, Recommender
from training.neighbours.base import Neighbours
from training.publish import ModelPayload
from training.stages.histories import recent_items

CART = "cart"
NEXT = "next"
NEXT_NEW = "next_new"
SERVED = "recsvc (served)"


def cart_metrics(ranked: Sequence[Sequence[int]], cases: Sequence[CartCase]) -> dict[str, float]:
    """HR@k, nDCG@k and MRR@k of the hidden item, averaged over cases."""
    out: dict[str, float] = {}
    n = max(len(cases), 1)
    for k in KS:
        hr = ndcg = mrr = 0.0
        for top, case in zip(ranked, cases, strict=True):
            top_k = list(top[:k])
            if case.hidden in top_k:
                pos = top_k.index(case.hidden)
                hr += 1.0
                ndcg += 1.0 / math.log2(pos + 2)
                mrr += 1.0 / (pos + 1)
        out[f"hr@{k}"], out[f"ndcg@{k}"], out[f"mrr@{k}"] = hr / n, ndcg / n, mrr / n
    return out


def set_metrics(
    ranked: Sequence[Sequence[int]], targets: Sequence[frozenset[int]]
) -> dict[str, float]:
    """recall@k (hits over min(k, |targets|), so a perfect list scores 1) and nDCG@k."""
    out: dict[str, float] = {}
    scored = [(top, t) for top, t in zip(ranked, targets, strict=True) if t]
    n = max(len(scored), 1)
    for k in KS:
        recall = ndcg = 0.0
        for top, t in scored:
            gains = [1.0 if i in t else 0.0 for i in top[:k]]
            ideal = min(k, len(t))
            recall += sum(gains) / ideal
            dcg = sum(g / math.log2(p + 2) for p, g in enumerate(gains))
            ndcg += dcg / sum(1.0 / math.log2(p + 2) for p in range(ideal))
        out[f"recall@{k}"], out[f"ndcg@{k}"] = recall / n, ndcg / n
    return out


def served_view(payload: ModelPayload) -> tuple[ModelView, list[ItemList]]:
    """The view and complement lists a worker would hold for this payload, read back
    through the same encoding the service reads, so the served ranking is what is scored."""
    view = ModelView.from_blobs(
        "candidate",
        lay.encode_json({**payload.meta, "format": lay.FORMAT_VERSION}),
        lay.encode_json(payload.item_ids),
        lay.encode_pairs(payload.popular_indices, payload.popular_scores, payload.popular_counts),
        None if payload.catalog is None else lay.encode_json(payload.catalog),
    )
    return view, decoded_lists(payload.neighbours, len(payload.item_ids))


def decoded_lists(nb: Neighbours, n_items: int) -> list[ItemList]:
    """Each item's list packed and decoded as the service reads it."""
    out = []
    for i in range(n_items):
        indices, scores = nb.row(i)
        out.append(ItemList.decode(lay.encode_pairs(indices, scores, nb.counts_row(i))))
    return out


def with_stored_histories(payload: ModelPayload, train: pd.DataFrame, limit: int) -> ModelPayload:
    """The payload with the histories the trainer would store for ``train``'s customers
    (``training.stages.histories``), so next purchases are ranked from what the e-mail path
    reads, not from the full history."""
    if payload.histories or limit <= 0:
        return payload
    return replace(payload, histories=recent_items(train, limit))


def served_from_payload(
    payload: ModelPayload, name: str = SERVED, settings: Settings | None = None
) -> Recommender:
    """The service's own answers, from a payload packed exactly as it would be published.

    The lists are encoded with the layout's packing and read back through ``ModelView``
    and ``recsvc.answers.recommend``, the functions behind the cart and history endpoints, so a
    change to how the service ranks (rules, weights, repurchase) is what gets measured.
    """
    settings = settings or Settings()
    ids = payload.item_ids
    view, lists = served_view(payload)
    stats = {"answers": 0, "filled": 0}

    def count(ranking: Ranking) -> list[int]:
        stats["answers"] += 1
        stats["filled"] += any(s.source == SOURCE_POPULAR for s in ranking.suggestions[:K_MAIN])
        return [view.index[s.item_id] for s in ranking.suggestions]

    def cart(items: list[int]) -> list[int]:
        lines = [(ids[i], 1) for i in items]
        answer = rec.rank_cart(view, settings, lines, [lists[i] for i in items], TOP)
        return count(answer.cross_sell)

    def cart_case(case: CartCase) -> list[int]:
        units = case.quantities or (1,) * len(case.cart)
        lines = [(ids[i], q) for i, q in zip(case.cart, units, strict=True)]
        answer = rec.rank_cart(view, settings, lines, [lists[i] for i in case.cart], TOP)
        return count(answer.cross_sell)

    def history(case: HistoryCase, exclude: bool) -> list[int]:
        stored = payload.histories.get(case.customer) if payload.histories else None
        if stored is not None:
            # As the e-mail path serves it: the history the trainer stores (its heaviest
            # items, their days and orders), weighted with the service's half-life.
            history = StoredHistory(list(stored[0]), list(stored[1]), list(stored[2]))
            seeds = [lists[view.index[i]] for i in history.item_ids]
            return count(rec.rank_stored(view, settings, history, seeds, TOP, exclude))
        weights = {ids[i]: w for i, w in zip(case.items, case.weights, strict=True)}
        seeds = [lists[i] for i in case.items]
        return count(rec.rank_history(view, settings, weights, seeds, TOP, exclude))

    return Recommender(name, cart, history, stats, cart_case=cart_case)


@dataclass
class MethodResult:
    name: str
    metrics: dict[str, dict[str, float]]
    coverage: dict[str, float]
    fallback_share: float = 0.0
    """Share of answers whose top 10 needed popular items to fill it (served only)."""
    per_case: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    """Headline measures case by case, by ``task/metric`` (``cart/hr@10``: 1 where the
    hidden item is in the top 10; ``next/recall@10``, ``next_new/recall@10``), in the
    cases' order: what a paired comparison of two methods on the same cases resamples."""
    params: dict[str, Any] = field(default_factory=dict)
    """The settings the method ran with (a tuned baseline's, per task)."""


def evaluate(
    rec: Recommender,
    cases: Cases,
    with_history_new: bool = True,
    tasks: frozenset[str] | None = None,
) -> MethodResult:
    """Scores ``rec`` on the tasks it answers (and ``tasks``, when given, of those)."""
    todo = rec.tasks if tasks is None else rec.tasks & tasks
    if not with_history_new:
        todo = todo - {NEXT_NEW}
    cart_lists = next_lists = new_lists = None
    if rec.many is not None:
        batch = rec.many
        if CART in todo:
            cart_lists = batch([(c.cart, None, c.cart) for c in cases.cart])
        if NEXT in todo:
            next_lists = batch([(h.items, h.weights, []) for h in cases.history])
        if NEXT_NEW in todo:
            new_lists = batch([(h.items, h.weights, h.items) for h in cases.history])
    else:
        if CART in todo:
            whole = rec.cart_case
            cart_lists = [whole(c) if whole else rec.cart(c.cart) for c in cases.cart]
        if NEXT in todo:
            next_lists = [rec.history(h, False) for h in cases.history]
        if NEXT_NEW in todo:
            new_lists = [rec.history(h, True) for h in cases.history]
    return _result(rec, cases, cart_lists, next_lists, new_lists)


def _result(
    rec: Recommender,
    cases: Cases,
    cart_lists: list[list[int]] | None,
    next_lists: list[list[int]] | None,
    new_lists: list[list[int]] | None,
) -> MethodResult:
    metrics: dict[str, dict[str, float]] = {}
    per_case: dict[str, np.ndarray] = {}
    coverage: dict[str, float] = {}
    n = max(len(cases.items), 1)
    if cart_lists is not None:
        metrics[CART] = cart_metrics(cart_lists, cases.cart)
        coverage[CART] = len({i for top in cart_lists for i in top[:K_MAIN]}) / n
        per_case[f"{CART}/hr@10"] = np.array(
            [float(c.hidden in top[:K_MAIN]) for top, c in zip(cart_lists, cases.cart, strict=True)]
        )
    if next_lists is not None:
        metrics[NEXT] = set_metrics(next_lists, [h.targets for h in cases.history])
        coverage[NEXT] = len({i for top in next_lists for i in top[:K_MAIN]}) / n
        per_case[f"{NEXT}/recall@10"] = _recalls(next_lists, [h.targets for h in cases.history])
    if new_lists is not None:
        metrics[NEXT_NEW] = set_metrics(new_lists, [h.new_targets for h in cases.history])
        per_case[f"{NEXT_NEW}/recall@10"] = _recalls(
            new_lists, [h.new_targets for h in cases.history]
        )
    answers = rec.stats.get("answers", 0)
    filled = rec.stats.get("filled", 0) / answers if answers else 0.0
    return MethodResult(rec.name, metrics, coverage, filled, per_case, dict(rec.params))


def _recalls(ranked: Sequence[Sequence[int]], targets: Sequence[frozenset[int]]) -> np.ndarray:
    """recall@10 case by case, over the cases with targets (as ``set_metrics``)."""
    return np.array(
        [
            sum(1.0 for i in top[:K_MAIN] if i in t) / min(K_MAIN, len(t))
            for top, t in zip(ranked, targets, strict=True)
            if t
        ]
    )


BASELINE_LISTS = 200
"""Positive weights per item a list baseline keeps (negative: half as many, for EASE)."""


def headline(result: MethodResult) -> dict[str, float]:
    """The numbers the gate and the table lead with."""
    m = result.metrics
    out: dict[str, float] = {}
    if CART in m:
        out["cart_hr@10"] = m[CART]["hr@10"]
        out["cart_ndcg@10"] = m[CART]["ndcg@10"]
    if NEXT in m:
        out["next_recall@10"] = m[NEXT]["recall@10"]
        out["next_ndcg@10"] = m[NEXT]["ndcg@10"]
    if NEXT_NEW in m:
        out["next_new_recall@10"] = m[NEXT_NEW]["recall@10"]
    return out


def table(results: Sequence[MethodResult]) -> str:
    cols = ["cart_hr@10", "cart_ndcg@10", "next_recall@10", "next_ndcg@10", "next_new_recall@10"]
    head = f"{'method':32s} " + " ".join(f"{c:>18s}" for c in cols) + f" {'coverage':>9s}"
    lines = [head, "-" * len(head)]
    for r in results:
        h = headline(r)
        cells = " ".join(f"{h[c]:18.4f}" if c in h else f"{'-':>18s}" for c in cols)
        cover = r.coverage.get(CART, r.coverage.get(NEXT, float("nan")))
        lines.append(f"{r.name:32s} {cells} {cover:9.3f}")
    return "\n".join(lines)


def summary(results: Sequence[MethodResult]) -> dict[str, Any]:
    return {
        r.name: {"metrics": r.metrics, "coverage": r.coverage, "headline": headline(r)}
        for r in results
    }
