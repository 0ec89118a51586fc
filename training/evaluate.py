"""Stage 5: offline evaluation on a temporal holdout, with baselines, in one run.

Two tasks, one per caller:
- cart completion (the cart widget): every test order with at least two items the model
  knows; one item is hidden (seeded), the rest is the cart; where does the hidden one rank?
- next purchases (the e-mail generator): every customer with purchases on both sides of
  the cutoff; from the history before it, which items bought after it are found? Scored
  with repurchases counted (the recommender may suggest what was bought before) and
  without (only new items count, and bought items are excluded).

"served" runs the service's own ranking (``recsvc.ranking.rank``) on the neighbour lists
the trainer would publish, so the number measured is the number users get.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from implicit.nearest_neighbours import BM25Recommender
from implicit.utils import ParameterWarning
from threadpoolctl import threadpool_limits

from recsvc import layout as lay
from recsvc import recommend as rec
from recsvc.config import Settings
from recsvc.ranking import SOURCE_POPULAR, Ranking, recency_weights
from recsvc.store import ModelView
from training import ingest, matrices
from training.errors import InputError
from training.model import AlsParams, train_als
from training.neighbours import ease_weights
from training.publish import ModelPayload

KS = (1, 5, 10, 20)
K_MAIN = 10
CART = "cart"
NEXT = "next"
NEXT_NEW = "next_new"
SERVED = "recsvc (served)"


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    test: pd.DataFrame
    cutoff: pd.Timestamp


def temporal_split(frame: pd.DataFrame, cutoff: pd.Timestamp | None, test_fraction: float) -> Split:
    """Train on everything before the cutoff, test on the rest; default: last fraction of time."""
    if ingest.TIMESTAMP not in frame:
        raise InputError("evaluation needs a timestamp column (--timestamp-col)")
    times = frame[ingest.TIMESTAMP]
    if cutoff is None:
        first, last = times.min(), times.max()
        cutoff = first + (last - first) * (1.0 - test_fraction)
    train = frame[times < cutoff]
    test = frame[times >= cutoff]
    if train.empty or test.empty:
        raise InputError(f"cutoff {cutoff} leaves an empty train or test set")
    return Split(train.reset_index(drop=True), test.reset_index(drop=True), pd.Timestamp(cutoff))


@dataclass(frozen=True)
class CartCase:
    cart: list[int]
    hidden: int


@dataclass(frozen=True)
class HistoryCase:
    items: list[int]
    weights: list[float]
    targets: frozenset[int]
    new_targets: frozenset[int]


@dataclass(frozen=True)
class Cases:
    items: np.ndarray
    cart: list[CartCase]
    history: list[HistoryCase]


def build_cases(split: Split, items: np.ndarray, half_life_days: float, seed: int = 0) -> Cases:
    """Test cases over the items the train split knows; unknown test items are not scored."""
    index = {str(item): i for i, item in enumerate(items)}
    rng = np.random.default_rng(seed)
    carts: list[CartCase] = []
    for _order, lines in split.test.groupby(ingest.ORDER, sort=True):
        known = [index[i] for i in dict.fromkeys(lines[ingest.ITEM]) if i in index]
        if len(known) >= 2:
            hidden = int(rng.integers(len(known)))
            carts.append(CartCase(known[:hidden] + known[hidden + 1 :], known[hidden]))
    after: dict[str, set[str]] = {}
    for customer, item in zip(split.test[ingest.CUSTOMER], split.test[ingest.ITEM], strict=True):
        after.setdefault(str(customer), set()).add(str(item))
    histories: list[HistoryCase] = []
    for customer, lines in split.train.groupby(ingest.CUSTOMER, sort=True):
        bought_after = after.get(str(customer))
        if not bought_after:
            continue
        targets = frozenset(index[i] for i in bought_after if i in index)
        if not targets:
            continue
        ids = [index[i] for i in lines[ingest.ITEM]]
        times = [t.to_pydatetime() for t in lines[ingest.TIMESTAMP]]
        weights: dict[int, float] = {}
        for i, w in zip(ids, recency_weights(times, half_life_days), strict=True):
            weights[i] = weights.get(i, 0.0) + w
        bought = list(weights)
        histories.append(
            HistoryCase(bought, [weights[i] for i in bought], targets, targets - set(bought))
        )
    return Cases(items, carts, histories)


# -- metrics ------------------------------------------------------------------------------


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


# -- recommenders -------------------------------------------------------------------------

TOP = max(KS)


@dataclass
class Recommender:
    """Top item indices for a cart, and for a history (the flag: exclude bought items)."""

    name: str
    cart: Callable[[list[int]], list[int]]
    history: Callable[[HistoryCase, bool], list[int]]
    stats: dict[str, int] = field(default_factory=dict)
    """Counts a recommender may keep: answers, and answers filled from popular items."""


def _top(scores: np.ndarray, exclude: Sequence[int]) -> list[int]:
    scores = scores.astype(np.float64, copy=True)
    if len(exclude):
        scores[list(exclude)] = -np.inf
    top = np.argpartition(-scores, TOP)[:TOP]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [int(i) for i in top if np.isfinite(scores[i])]


def popularity_recommender(pop: np.ndarray) -> Recommender:
    def cart(items: list[int]) -> list[int]:
        return _top(pop, items)

    def history(case: HistoryCase, exclude: bool) -> list[int]:
        return _top(pop, case.items if exclude else [])

    return Recommender("popularity", cart, history)


def past_purchases_recommender(n_items: int, pop: np.ndarray) -> Recommender:
    """Re-suggests what the customer bought, most (and most recently) bought first."""

    def history(case: HistoryCase, exclude: bool) -> list[int]:
        scores = pop / (pop.max() + 1.0)  # ties and the rest by popularity
        if not exclude:
            scores = scores.copy()
            scores[case.items] += np.array(case.weights) + 1.0
        return _top(scores, case.items if exclude else [])

    return Recommender("past purchases", lambda items: _top(pop, items), history)


def similarity_recommender(name: str, sim: np.ndarray | sp.csr_matrix) -> Recommender:
    """Sums the similarity rows of the input items (no self-similarity)."""
    dense = sim.toarray() if sp.issparse(sim) else np.asarray(sim)
    dense = dense.astype(np.float32, copy=True)
    np.fill_diagonal(dense, 0.0)

    def cart(items: list[int]) -> list[int]:
        return _top(dense[items].sum(axis=0), items)

    def history(case: HistoryCase, exclude: bool) -> list[int]:
        scores = np.asarray(case.weights, dtype=np.float32) @ dense[case.items]
        return _top(scores, case.items if exclude else [])

    return Recommender(name, cart, history)


def served_from_payload(
    payload: ModelPayload, name: str = SERVED, settings: Settings | None = None
) -> Recommender:
    """The service's own answers, from a payload packed exactly as it would be published.

    The lists are encoded with the layout's packing and read back through ``ModelView``
    and ``recsvc.recommend``, the functions behind the cart and history endpoints, so a
    change to how the service ranks (rules, weights, repurchase) is what gets measured.
    """
    settings = settings or Settings()
    ids = payload.item_ids
    view = ModelView.from_blobs(
        "candidate",
        lay.encode_json({**payload.meta, "format": lay.FORMAT_VERSION}),
        lay.encode_json(ids),
        lay.encode_pairs(payload.popular_indices, payload.popular_scores, payload.popular_counts),
        None if payload.catalog is None else lay.encode_json(payload.catalog),
    )
    nb = payload.neighbours
    blobs = [lay.encode_pairs(*nb.row(i), nb.counts_row(i)) for i in range(len(ids))]
    stats = {"answers": 0, "filled": 0}

    def count(ranking: Ranking) -> list[int]:
        stats["answers"] += 1
        stats["filled"] += any(s.source == SOURCE_POPULAR for s in ranking.suggestions[:K_MAIN])
        return [view.index[s.item_id] for s in ranking.suggestions]

    def cart(items: list[int]) -> list[int]:
        lines = [(ids[i], 1) for i in items]
        answer = rec.rank_cart(view, settings, lines, [blobs[i] for i in items], TOP)
        return count(answer.cross_sell)

    def history(case: HistoryCase, exclude: bool) -> list[int]:
        weights = {ids[i]: w for i, w in zip(case.items, case.weights, strict=True)}
        seeds = [blobs[i] for i in case.items]
        return count(rec.rank_history(view, settings, weights, seeds, TOP, exclude))

    return Recommender(name, cart, history, stats)


@dataclass
class MethodResult:
    name: str
    metrics: dict[str, dict[str, float]]
    coverage: dict[str, float]
    fallback_share: float = 0.0
    """Share of answers whose top 10 needed popular items to fill it (served only)."""


def evaluate(rec: Recommender, cases: Cases, with_history_new: bool = True) -> MethodResult:
    cart_lists = [rec.cart(c.cart) for c in cases.cart]
    next_lists = [rec.history(h, False) for h in cases.history]
    metrics = {
        CART: cart_metrics(cart_lists, cases.cart),
        NEXT: set_metrics(next_lists, [h.targets for h in cases.history]),
    }
    if with_history_new:
        new_lists = [rec.history(h, True) for h in cases.history]
        metrics[NEXT_NEW] = set_metrics(new_lists, [h.new_targets for h in cases.history])
    n = max(len(cases.items), 1)
    coverage = {
        CART: len({i for top in cart_lists for i in top[:K_MAIN]}) / n,
        NEXT: len({i for top in next_lists for i in top[:K_MAIN]}) / n,
    }
    answers = rec.stats.get("answers", 0)
    filled = rec.stats.get("filled", 0) / answers if answers else 0.0
    return MethodResult(rec.name, metrics, coverage, filled)


def baselines(inter: matrices.Interactions, ease_lambda: float = 50.0) -> list[Recommender]:
    pop = matrices.popularity(inter).astype(np.float64)
    x = inter.order_item.astype(np.float32)
    co = (x.T @ x).toarray()
    counts = np.diag(co).copy()
    inv = 1.0 / np.sqrt(np.maximum(counts, 1.0))
    cosine = co * inv[:, None] * inv[None, :]
    with threadpool_limits(1, "blas"), warnings.catch_warnings():
        # implicit converts its own BM25 output (COO) and warns about it; not our input.
        warnings.simplefilter("ignore", ParameterWarning)
        knn = BM25Recommender(K=50)
        knn.fit(inter.customer_item, show_progress=False)
    default_als = train_als(
        matrices.weight(inter.customer_item, "counts"),
        AlsParams(factors=100, regularization=0.01, alpha=1.0, iterations=15),
    )
    unit = default_als / np.maximum(np.linalg.norm(default_als, axis=1, keepdims=True), 1e-12)
    return [
        popularity_recommender(pop),
        past_purchases_recommender(inter.n_items, pop),
        similarity_recommender("co-occurrence (cosine)", cosine),
        similarity_recommender("item-kNN BM25 (implicit)", knn.similarity),
        similarity_recommender("ALS default, cosine", np.maximum(unit @ unit.T, 0.0)),
        similarity_recommender(f"EASE (lambda {ease_lambda:g})", ease_weights(x, ease_lambda)),
    ]


def headline(result: MethodResult) -> dict[str, float]:
    """The numbers the gate and the table lead with."""
    m = result.metrics
    out = {
        "cart_hr@10": m[CART]["hr@10"],
        "cart_ndcg@10": m[CART]["ndcg@10"],
        "next_recall@10": m[NEXT]["recall@10"],
        "next_ndcg@10": m[NEXT]["ndcg@10"],
    }
    if NEXT_NEW in m:
        out["next_new_recall@10"] = m[NEXT_NEW]["recall@10"]
    return out


def table(results: Sequence[MethodResult]) -> str:
    cols = ["cart_hr@10", "cart_ndcg@10", "next_recall@10", "next_ndcg@10", "next_new_recall@10"]
    head = f"{'method':32s} " + " ".join(f"{c:>18s}" for c in cols) + f" {'coverage':>9s}"
    lines = [head, "-" * len(head)]
    for r in results:
        h = headline(r)
        cells = " ".join(f"{h.get(c, float('nan')):18.4f}" for c in cols)
        lines.append(f"{r.name:32s} {cells} {r.coverage[CART]:9.3f}")
    return "\n".join(lines)


def summary(results: Sequence[MethodResult]) -> dict[str, Any]:
    return {
        r.name: {"metrics": r.metrics, "coverage": r.coverage, "headline": headline(r)}
        for r in results
    }
