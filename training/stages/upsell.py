"""Scoring the upsell slot: did the customer later buy what the cart was offered?

The cart widget's second slot suggests a pricier alternative to a cart item. There is no
hidden item to find, so the measure is the one a store can check afterwards: of the
upsell suggestions shown for a test cart, how many did the same customer buy in a later
order of the test window? recsvc's answer (``recsvc.answers.recommend.rank_cart``, as served) is
compared on the same carts, with the same number of suggestions per cart, with two
in-band picks a store could make without a model:

- a random item from the band (priced ``upsell_min_ratio``..``upsell_max_ratio`` times a
  cart item, same category when both have one, not in the cart, available);
- the most popular item of that band.

A cart counts a hit when any of its suggestions was bought later; the paired interval is
over carts (``training.evaluation.intervals``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsvc.answers import recommend as rec
from recsvc.config import Settings
from recsvc.store import ModelView
from training.evaluation import intervals
from training.evaluation.cases import CartCase
from training.evaluation.evaluate import decoded_lists, served_view
from training.evaluation.intervals import verdict
from training.publish import ModelPayload

SERVED = "recsvc upsell (served)"
RANDOM = "random in-band item"
POPULAR = "most popular in-band item"


@dataclass(frozen=True)
class UpsellResult:
    name: str
    carts: int
    """Carts with at least one suggestion (all three methods score the same carts)."""
    suggestions: int
    bought_later: int
    """Suggestions the customer bought in a later order."""
    hits: np.ndarray
    """Per cart: 1 when any suggestion was bought later."""

    @property
    def hit_rate(self) -> float:
        return float(self.hits.mean()) if self.hits.size else 0.0

    @property
    def precision(self) -> float:
        return self.bought_later / self.suggestions if self.suggestions else 0.0


def _band(view: ModelView, cart: Sequence[int], low: float, high: float) -> np.ndarray:
    """Items priced within the band above any cart item (same category when known)."""
    price, category = view.arrays.price, view.arrays.category
    ok = np.zeros(price.size, bool)
    for i in cart:
        base = price[i]
        if not base > 0:
            continue
        mine = (price >= low * base) & (price <= high * base)
        if category[i] >= 0:
            mine &= (category == category[i]) | (category < 0)
        ok |= mine
    ok &= view.arrays.available
    ok[list(cart)] = False
    return np.flatnonzero(ok)


def evaluate(
    payload: ModelPayload,
    cases: Sequence[CartCase],
    settings: Settings | None = None,
    seed: int = 0,
) -> list[UpsellResult]:
    """recsvc's upsell slot and the two in-band picks, on the test carts of known customers
    that get an upsell answer. Empty when the payload has no alternatives (an engine fit
    for scoring only)."""
    if payload.alternatives is None:
        return []
    settings = settings or Settings()
    view, lists = served_view(payload)
    alts = decoded_lists(payload.alternatives, len(payload.item_ids))
    ids = payload.item_ids
    rank_of = np.empty(len(ids), np.int64)
    order = np.asarray(view.popular, np.int64)
    rank_of[:] = order.size
    rank_of[order] = np.arange(order.size)
    rng = np.random.default_rng(seed)
    k = max(settings.upsell_k, 1)
    lo, hi = settings.upsell_min_ratio, settings.upsell_max_ratio
    picks: dict[str, list[list[int]]] = {SERVED: [], RANDOM: [], POPULAR: []}
    later: list[frozenset[int]] = []
    for case in cases:
        if not case.customer:
            continue
        full = [*case.cart, case.hidden]
        units = [*(case.quantities or (1,) * len(case.cart)), 1]
        lines = [(ids[i], q) for i, q in zip(full, units, strict=True)]
        answer = rec.rank_cart(
            view, settings, lines, [lists[i] for i in full], 0,
            alternatives=[alts[i] for i in full], upsell_k=k,
        )  # fmt: skip
        served = [view.index[u.item_id] for u in answer.upsell]
        if not served:
            continue
        band = _band(view, full, lo, hi)
        n = min(len(served), band.size)
        picks[SERVED].append(served)
        picks[RANDOM].append([int(i) for i in rng.choice(band, size=n, replace=False)])
        popular = band[np.argsort(rank_of[band], kind="stable")[:n]]
        picks[POPULAR].append([int(i) for i in popular])
        later.append(case.later)
    out = []
    for name, chosen in picks.items():
        bought = [sum(1 for i in c if i in after) for c, after in zip(chosen, later, strict=True)]
        out.append(
            UpsellResult(
                name,
                len(chosen),
                sum(len(c) for c in chosen),
                sum(bought),
                np.array([float(b > 0) for b in bought]),
            )
        )
    return out


def report(results: Sequence[UpsellResult]) -> dict[str, Any]:
    """The three methods, and recsvc against each pick with its paired 95% interval."""
    if not results:
        return {}
    served = results[0]
    doc: dict[str, Any] = {
        "carts": served.carts,
        "methods": [
            {
                "name": r.name,
                "suggestions": r.suggestions,
                "bought_later": r.bought_later,
                "precision": r.precision,
                "hit_rate": r.hit_rate,
            }
            for r in results
        ],
        "against": {},
    }
    for other in results[1:]:
        iv = intervals.paired(served.hits, other.hits)
        doc["against"][other.name] = {**iv.as_dict(), "verdict": verdict(iv.low, iv.high)}
    return doc


def lines(doc: dict[str, Any]) -> list[str]:
    """The printout: one line per method, one per comparison."""
    if not doc:
        return ["upsell: not scored (the candidate was fit without alternatives)"]
    out = [f"upsell, {doc['carts']:,} test carts of known customers with an upsell answer:"]
    for m in doc["methods"]:
        out.append(
            f"  {m['name']:28s} bought later: {m['bought_later']:,} of {m['suggestions']:,} "
            f"suggestions ({m['precision']:.4f}); carts with a hit {m['hit_rate']:.4f}"
        )
    for name, c in doc["against"].items():
        out.append(
            f"  served vs {name}: {c['difference']:+.4f} "
            f"(95% interval {c['low']:+.4f} to {c['high']:+.4f}): {c['verdict'].upper()}"
        )
    return out
