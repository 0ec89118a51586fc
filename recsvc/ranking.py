"""Ranking: a pure function of neighbour lists, the cart or history, and the rules.

No I/O happens here, so every rule is tested without a server and the request path spends
its time in one vectorised pass.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

SOURCE_NEIGHBOURS = "neighbours"
SOURCE_REPURCHASE = "repurchase"
SOURCE_POPULAR = "popular"
SOURCE_PINNED = "pinned"
SOURCE_ALTERNATIVES = "alternatives"


@dataclass(frozen=True)
class Seed:
    """One known item of a cart or history, its weight, and its neighbour list."""

    item_id: str
    index: int
    weight: float
    indices: IntArray
    scores: FloatArray
    counts: IntArray | None = None
    """Evidence per neighbour (orders bought together); None when not known."""


@dataclass(slots=True)
class Suggestion:
    item_id: str
    score: float
    because: tuple[str, ...]
    source: str
    evidence: int = 0
    """The count behind the strongest ``because`` seed: orders bought together with it."""
    boosted: bool = False


@dataclass(frozen=True)
class Ranking:
    suggestions: tuple[Suggestion, ...]
    fallback: bool
    """True when nothing in the input was known and the answer is popular items only."""


@dataclass(frozen=True)
class Rules:
    k: int = 10
    exclude: Collection[int] = field(default_factory=frozenset)
    """Item indices never to suggest (the cart itself, already bought items)."""
    repurchase_weight: float = 0.0
    """Scores a seed item itself by this times its weight: customers rebuy what they like."""
    repurchase_bonus: float = 0.0
    """Added to every seed item's own score (with a repurchase weight above 0): large enough,
    and everything bought before ranks above items with only neighbour evidence."""
    because_limit: int = 3
    negatives: bool = True
    """Whether negative weights (item i makes j less likely in the same order) count.
    They help a cart, which is one order; across a history of many orders they only
    measured as noise, so the history ranking leaves them out."""
    allowed: BoolArray | None = None
    """Per item: may it be suggested at all (in stock, passes the merchandising filters)."""
    category: IntArray | None = None
    """Per item: a category code (-1: none), for ``max_per_category``."""
    max_per_category: int | None = None
    boost: Mapping[int, float] = field(default_factory=dict)
    """Item index -> score factor, for a campaign; boosted suggestions are marked."""
    pins: Sequence[int] = ()
    """Item indices placed first, in this order, marked as pinned (when allowed)."""


def rank(
    seeds: Sequence[Seed],
    item_ids: Sequence[str],
    popular: IntArray,
    rules: Rules,
) -> Ranking:
    """Ranks candidates by the weighted sum of their similarity to every seed.

    Each suggestion names the seeds that contributed most (``because``). Pinned items come
    first; when the seeds yield fewer than ``k`` candidates that pass the rules, the rest
    are popular items that pass them, so a caller gets ``k`` answers while the catalog
    allows it.
    """
    exclude = set(rules.exclude)
    picker = _Picker(rules, exclude, item_ids)
    for index in rules.pins:
        picker.offer(index, Suggestion(item_ids[index], 0.0, (), SOURCE_PINNED))
    if seeds:
        for suggestion, index in _rank_seeds(seeds, item_ids, exclude, rules):
            if picker.full():
                break
            picker.offer(index, suggestion)
    if not picker.full():
        _popular_fill(popular, item_ids, picker)
    return Ranking(suggestions=tuple(picker.chosen), fallback=not seeds)


class _Picker:
    """Takes suggestions in order while they pass the rules, up to k."""

    def __init__(self, rules: Rules, exclude: set[int], item_ids: Sequence[str]) -> None:
        self.rules = rules
        self.exclude = exclude
        self.taken: set[int] = set()
        self.per_category: dict[int, int] = {}
        self.chosen: list[Suggestion] = []

    def full(self) -> bool:
        return len(self.chosen) >= self.rules.k

    def offer(self, index: int, suggestion: Suggestion) -> bool:
        rules = self.rules
        if self.full() or index in self.taken or index in self.exclude:
            return False
        if rules.allowed is not None and not rules.allowed[index]:
            return False
        cat = -1 if rules.category is None else int(rules.category[index])
        if rules.max_per_category is not None and cat >= 0:
            if self.per_category.get(cat, 0) >= rules.max_per_category:
                return False
            self.per_category[cat] = self.per_category.get(cat, 0) + 1
        self.taken.add(index)
        self.chosen.append(suggestion)
        return True


def _rank_seeds(
    seeds: Sequence[Seed],
    item_ids: Sequence[str],
    exclude: set[int],
    rules: Rules,
) -> list[tuple[Suggestion, int]]:
    # One vectorised pass, no Python loop per candidate: a cart touches a few hundred
    # (index, score) pairs, and per-pair Python work was most of a request's time.
    sizes = np.fromiter((x.indices.size for x in seeds), dtype=np.int64, count=len(seeds))
    owner = np.repeat(np.arange(len(seeds), dtype=np.int64), sizes)
    idx = np.concatenate([x.indices for x in seeds])
    weights = np.fromiter((x.weight for x in seeds), dtype=np.float64, count=len(seeds))
    contrib = np.concatenate([x.scores for x in seeds]).astype(np.float64) * weights[owner]
    counts = np.concatenate(
        [x.counts if x.counts is not None else np.zeros(x.indices.size, np.int64) for x in seeds]
    )
    if not rules.negatives:
        keep = contrib > 0
        idx, contrib, counts, owner = idx[keep], contrib[keep], counts[keep], owner[keep]
    if rules.repurchase_weight > 0:
        own = np.arange(len(seeds), dtype=np.int64)
        idx = np.concatenate([idx, [x.index for x in seeds]])
        contrib = np.concatenate(
            [contrib, weights * rules.repurchase_weight + rules.repurchase_bonus]
        )
        counts = np.concatenate([counts, np.zeros(len(seeds), np.int64)])
        owner = np.concatenate([owner, own])
    if idx.size == 0:
        return []
    # Dense over the catalog: bincount and masks over a few thousand floats cost less
    # than sorting the entries (np.unique measured as the largest single step).
    n_items = len(item_ids)
    totals = np.bincount(idx, weights=contrib, minlength=n_items)
    if exclude:
        totals[np.fromiter(exclude, dtype=np.int64, count=len(exclude))] = 0.0
    if rules.allowed is not None:
        totals[~rules.allowed] = 0.0
    boosted = np.zeros(n_items, dtype=bool)
    for index, factor in rules.boost.items():
        if totals[index] > 0:
            totals[index] *= factor
            boosted[index] = True
    allowed = np.flatnonzero(totals > 0)
    # Room for what the category cap will skip; without a cap exactly k are needed.
    room = rules.k + len(rules.pins)
    if rules.max_per_category is not None:
        room *= 4
    if allowed.size > room:
        allowed = allowed[np.argpartition(-totals[allowed], room - 1)[:room]]
    # Highest score first; ties by index keep answers stable across calls.
    chosen = allowed[np.lexsort((allowed, -totals[allowed]))]
    # Each chosen candidate's contribution from each seed, from the entries naming a
    # chosen candidate only: a one-hot product over all entries and seeds was most of a
    # long history's time.
    row_of = np.full(n_items, -1, dtype=np.int64)
    row_of[chosen] = np.arange(chosen.size)
    rows = row_of[idx]
    mine = rows >= 0
    by_seed = np.zeros((chosen.size, len(seeds)))
    np.add.at(by_seed, (rows[mine], owner[mine]), contrib[mine])
    count_by_seed = np.zeros((chosen.size, len(seeds)), dtype=np.int64)
    np.maximum.at(count_by_seed, (rows[mine], owner[mine]), counts[mine])
    order = np.argsort(-by_seed, axis=1, kind="stable")[:, : rules.because_limit]
    seed_indices = {s.index for s in seeds}
    out: list[tuple[Suggestion, int]] = []
    positive = (by_seed[np.arange(chosen.size)[:, None], order] > 0).tolist()
    for row, j in enumerate(chosen.tolist()):
        because_at = [o for o, ok in zip(order[row].tolist(), positive[row], strict=True) if ok]
        out.append(
            (
                Suggestion(
                    item_id=item_ids[j],
                    score=float(totals[j]),
                    because=tuple(seeds[o].item_id for o in because_at),
                    source=SOURCE_REPURCHASE if j in seed_indices else SOURCE_NEIGHBOURS,
                    evidence=int(count_by_seed[row, because_at[0]]) if because_at else 0,
                    boosted=bool(boosted[j]),
                ),
                j,
            )
        )
    return out


def _popular_fill(popular: IntArray, item_ids: Sequence[str], picker: _Picker) -> None:
    for rank_pos, index in enumerate(popular.tolist()):
        if picker.full():
            break
        # Popular items score below every neighbour-based one, in popularity order.
        picker.offer(
            index,
            Suggestion(
                item_id=item_ids[index],
                score=0.0 - rank_pos * 1e-9,
                because=(),
                source=SOURCE_POPULAR,
            ),
        )


# -- upsell -----------------------------------------------------------------------------


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


def upsell(
    sources: Sequence[Seed],
    item_ids: Sequence[str],
    popular: IntArray,
    price: npt.NDArray[np.float64],
    rules: Rules,
    band: PriceBand,
    margin: npt.NDArray[np.float64] | None = None,
) -> list[Upsell]:
    """For each cart item, its alternatives priced within the band above it.

    ``sources`` are the cart items with their alternative lists. Same category only, when
    both items have one; ranked by closeness, times (1 + margin) when the catalog gives a
    margin. Each entry names the item it upgrades and the price difference. When no
    alternative qualifies, popular items in the band of a cart item fill in (``popular``
    source, for the response's fallback mark).
    """
    category = rules.category
    picker = _Picker(rules, set(rules.exclude), item_ids)
    out: list[Upsell] = []
    if sources:
        # All cart items' alternatives in one pass: numpy calls per source were most of
        # the upsell's time.
        sizes = np.fromiter((x.indices.size for x in sources), np.int64, count=len(sources))
        origin = np.repeat(np.arange(len(sources), dtype=np.int64), sizes)
        cand = np.concatenate([x.indices for x in sources])
        score = np.concatenate([x.scores for x in sources]).astype(np.float64)
        count = np.concatenate(
            [
                x.counts if x.counts is not None else np.zeros(x.indices.size, np.int64)
                for x in sources
            ]
        )
        src_index = np.fromiter((x.index for x in sources), np.int64, count=len(sources))
        base = price[src_index][origin]
        p = price[cand]
        with np.errstate(invalid="ignore"):
            ok = (score > 0) & (base > 0) & (p >= band.low * base) & (p <= band.high * base)
        if category is not None:
            own = category[src_index][origin]
            ok &= (own < 0) | (category[cand] == own) | (category[cand] < 0)
        cand, score, count, origin = cand[ok], score[ok], count[ok], origin[ok]
        if margin is not None:
            m = margin[cand]
            score = score * (1.0 + np.where(np.isfinite(m), np.maximum(m, 0.0), 0.0))
        # Best first; an item reached from two cart items keeps its best entry.
        order = np.lexsort((cand, -score))
        for at in order.tolist():
            if picker.full():
                break
            j = int(cand[at])
            src = sources[int(origin[at])]
            if picker.offer(j, _ALT):
                out.append(
                    Upsell(
                        item_ids[j],
                        float(score[at]),
                        src.item_id,
                        float(price[j]) - float(price[src.index]),
                        int(count[at]),
                    )
                )
    if picker.full():
        return out
    # Popular filler, per cart item: the popular items within its band (and category).
    pop_price = price[popular]
    for src in sources:
        src_price = float(price[src.index])
        if picker.full():
            break
        if not (src_price > 0 and math.isfinite(src_price)):
            continue
        fits = (pop_price >= band.low * src_price) & (pop_price <= band.high * src_price)
        if category is not None and category[src.index] >= 0:
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


def recency_weights(times: Sequence[datetime | None], half_life_days: float) -> list[float]:
    """Exponential decay relative to the latest purchase; an undated one counts as latest.

    Measuring age from the latest purchase rather than from now keeps weights of an old
    history from all underflowing to zero while their ratios stay the same.
    """
    dated = [t for t in times if t is not None]
    if not dated:
        return [1.0] * len(times)
    latest = max(dated)
    out = []
    for t in times:
        if t is None:
            out.append(1.0)
            continue
        age_days = (latest - t).total_seconds() / 86400.0
        out.append(float(0.5 ** (age_days / half_life_days)))
    return out
