"""Upsell: for each cart item, the better alternative of the same kind (in its price band,
when one is asked for)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recsvc.ranking.cart import _counts, _Picker
from recsvc.ranking.suggestions import (
    SOURCE_ALTERNATIVES,
    SOURCE_POPULAR,
    IntArray,
    Rules,
    Seed,
    Suggestion,
)


@dataclass(slots=True)
class Upsell:
    item_id: str
    score: float
    upgrades: str
    """The cart item this is a pricier alternative to."""
    price_difference: float
    evidence: int
    """Customers who bought both."""
    source: str = SOURCE_ALTERNATIVES


_ALT = Suggestion("", 0.0, (), SOURCE_ALTERNATIVES)
"""What the upsell picker is offered: only the index matters to it."""


@dataclass(frozen=True)
class PriceBand:
    low: float = 1.05
    high: float = 2.0


UpsellEntry = tuple[float, int, int, float]
"""An alternative that qualifies for a cart item's upsell slot: (minus its score, its
item index, customers who bought both, its price)."""


def band_alternatives(
    source: Seed,
    price: npt.NDArray[np.float64],
    category: IntArray | None,
    band: PriceBand,
    margin: npt.NDArray[np.float64] | None = None,
) -> list[UpsellEntry]:
    """One cart item's alternatives priced within the band above it, best first: same
    category only, when both items have one; scored by closeness, times (1 + margin) when
    the catalog gives a margin. A cart item without a price has none. The same for every
    cart that holds the item, so a service keeps it per view (``recsvc.answers.recommend``)."""
    base = float(price[source.index])
    if not base > 0:  # no price (NaN) or none to compare with
        return []
    cand = source.indices
    score = source.scores.astype(np.float64, copy=False)
    p = price[cand]
    ok = (score > 0) & (p >= band.low * base) & (p <= band.high * base)
    if category is not None and category[source.index] >= 0:
        theirs = category[cand]
        ok &= (theirs == category[source.index]) | (theirs < 0)
    sel = ok.nonzero()[0]
    if sel.size == 0:
        return []
    chosen, score = cand[sel], score[sel]
    if margin is not None:
        m = margin[chosen]
        score = score * (1.0 + np.where(np.isfinite(m), np.maximum(m, 0.0), 0.0))
    return sorted(
        zip((-score).tolist(), chosen.tolist(), _counts(source)[sel].tolist(), p[sel].tolist(),
            strict=True)
    )  # fmt: skip


def upsell(
    sources: Sequence[Seed],
    item_ids: Sequence[str],
    popular: IntArray,
    price: npt.NDArray[np.float64],
    rules: Rules,
    band: PriceBand,
    margin: npt.NDArray[np.float64] | None = None,
    qualified: Sequence[Sequence[UpsellEntry]] | None = None,
) -> list[Upsell]:
    """For each cart item, its alternatives priced within the band above it
    (``band_alternatives``; ``qualified`` gives them per source when already known).

    ``sources`` are the cart items with their alternative lists. Each entry names the item
    it upgrades and the price difference. When no alternative qualifies, popular items in
    the band of a cart item fill in (``popular`` source, for the response's fallback mark).
    """
    category = rules.category
    picker = _Picker(rules, set(rules.exclude), item_ids)
    out: list[Upsell] = []
    entries: list[tuple[float, int, int, int, float]] = []
    for origin, src in enumerate(sources):
        alternatives = (
            qualified[origin]
            if qualified is not None
            else band_alternatives(src, price, category, band, margin)
        )
        entries += [(s, j, origin, n, p) for s, j, n, p in alternatives]
    # Best first; ties by item, then cart order: an item reached from two cart items
    # keeps its best entry (the picker takes an item once).
    entries.sort()
    for negative, j, origin, n, p in entries:
        if picker.full():
            break
        if picker.offer(j, _ALT):
            src = sources[origin]
            out.append(Upsell(item_ids[j], -negative, src.item_id, p - float(price[src.index]), n))
    if picker.full():
        return out
    # Popular filler, per cart item: the popular items within its band and category.
    pop_price = price[popular]
    for src in sources:
        src_price = float(price[src.index])
        if picker.full():
            break
        if not (src_price > 0 and math.isfinite(src_price)):
            continue
        if category is None or category[src.index] < 0:
            # Nothing says what kind of item it is: no filler rather than an unrelated one.
            continue
        fits = (pop_price >= band.low * src_price) & (pop_price <= band.high * src_price)
        fits &= category[popular] == category[src.index]
        for rank_pos in np.flatnonzero(fits).tolist():
            if picker.full():
                break
            j = int(popular[rank_pos])
            if picker.offer(j, _ALT):
                diff = float(price[j]) - src_price
                out.append(
                    Upsell(item_ids[j], -rank_pos * 1e-9, src.item_id, diff, 0, SOURCE_POPULAR)
                )
    return out
