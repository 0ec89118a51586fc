"""Ranking: a pure function of neighbour lists, the cart or history, and the rules.

No I/O happens here, so every rule is tested without a server and the request path spends
its time in one vectorised pass.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.floating[Any]]
"""Scores: float64 as the service keeps them (float32 as packed is accepted too)."""
BoolArray = npt.NDArray[np.bool_]

SOURCE_NEIGHBOURS = "neighbours"
SOURCE_REPURCHASE = "repurchase"
SOURCE_POPULAR = "popular"
SOURCE_PINNED = "pinned"
SOURCE_ALTERNATIVES = "alternatives"
SOURCE_NEW = "new_in_category"
NEW_ITEMS_PER_ANSWER = 2
"""At most this many items added since the last training join one answer (one per
category): enough to be seen, too few to push out what the model knows."""


@dataclass(slots=True)
class Seed:
    """One known item of a cart or history, its weight, and its neighbour list."""

    item_id: str
    index: int
    weight: float
    indices: IntArray
    scores: FloatArray
    counts: IntArray | None = None
    """Evidence per neighbour (orders bought together); None when not known."""
    positive_only: bool = False
    """Every weight is known positive (the caller dropped the rest)."""


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


@dataclass(slots=True)
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
    fresh: Sequence[int] = (),
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
    chosen = picker.chosen
    if fresh and seeds and rules.category is not None:
        chosen = place_new(picker, fresh, {s.index for s in seeds}, item_ids)
    return Ranking(suggestions=tuple(chosen), fallback=not seeds)


def place_new(
    picker: _Picker,
    fresh: Sequence[int],
    seed_indices: Collection[int],
    item_ids: Sequence[str],
) -> list[Suggestion]:
    """Items added since the last training (``fresh``, newest first), which no list knows
    yet, placed as their category's popular items would be. Only for the categories the
    answer is about (those of its suggestions from the lists, and of the seeds); one per
    category, right after that category's best suggestion (or ahead of the popular filler
    when none is there), at most ``NEW_ITEMS_PER_ANSWER``, within ``k``."""
    rules = picker.rules
    assert rules.category is not None
    category = rules.category
    out = list(zip(picker.chosen, picker.indices, strict=True))
    suggested = [int(category[i]) for s, i in out if s.source != SOURCE_POPULAR]
    wanted = ({int(category[i]) for i in seed_indices} | set(suggested)) - {-1}
    placed: set[int] = set()
    for index in fresh:
        if len(placed) >= NEW_ITEMS_PER_ANSWER:
            break
        cat = int(category[index])
        if cat not in wanted or cat in placed or index in picker.taken or index in picker.exclude:
            continue
        if rules.allowed is not None and not rules.allowed[index]:
            continue
        best = next((p for p, (_, i) in enumerate(out) if int(category[i]) == cat), None)
        if best is None:
            at = next((p for p, (s, _) in enumerate(out) if s.source == SOURCE_POPULAR), len(out))
        else:
            at = best + 1
        score = out[at - 1][0].score if at > 0 else 0.0
        out.insert(at, (Suggestion(item_ids[index], score, (), SOURCE_NEW), index))
        placed.add(cat)
    return [s for s, _ in out[: rules.k]]


class _Picker:
    """Takes suggestions in order while they pass the rules, up to k."""

    def __init__(self, rules: Rules, exclude: set[int], item_ids: Sequence[str]) -> None:
        self.rules = rules
        self.exclude = exclude
        self.taken: set[int] = set()
        self.per_category: dict[int, int] = {}
        self.chosen: list[Suggestion] = []
        self.indices: list[int] = []
        """The item index of each chosen suggestion, in order."""

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
        self.indices.append(index)
        return True


FEW_SEEDS = 8
"""Up to this many seeds (a cart, mostly), ``_rank_few``: its Python part grows with the
seeds times k, while its numpy calls are a third of the general path's."""
_TINY = float(np.nextafter(0.0, 1.0))


def _rank_seeds(
    seeds: Sequence[Seed],
    item_ids: Sequence[str],
    exclude: set[int],
    rules: Rules,
) -> list[tuple[Suggestion, int]]:
    if len(seeds) <= FEW_SEEDS and rules.repurchase_weight <= 0 and not rules.boost:
        return _rank_few(seeds, item_ids, exclude, rules)
    return _rank_many(seeds, item_ids, exclude, rules)


def _rank_few(
    seeds: Sequence[Seed],
    item_ids: Sequence[str],
    exclude: set[int],
    rules: Rules,
) -> list[tuple[Suggestion, int]]:
    """``_rank_many``'s answer for a few seeds, from the entries themselves.

    Each entry gets its candidate's total. A candidate has at most one entry per seed, so
    the entries at or above the (room * seeds)-th largest total hold every entry of the
    best ``room`` candidates: those few entries are grouped in Python, which also gives
    each candidate its seeds (``because``) without a candidates-by-seeds table.
    """
    n_seeds = len(seeds)
    sizes = [x.indices.size for x in seeds]
    if n_seeds == 1:
        idx, contrib, counts = seeds[0].indices, seeds[0].scores, _counts(seeds[0])
    else:
        idx = np.concatenate([x.indices for x in seeds])
        contrib = np.concatenate([x.scores for x in seeds])
        counts = np.concatenate([_counts(x) for x in seeds])
    contrib = contrib.astype(np.float64, copy=False)
    if any(x.weight != 1.0 for x in seeds):
        contrib = contrib * np.repeat(np.array([x.weight for x in seeds]), sizes)
    owner: IntArray | None = None
    if not rules.negatives and not all(x.positive_only for x in seeds):
        keep = (contrib > 0).nonzero()[0]
        owner = np.repeat(np.arange(n_seeds), sizes)[keep]
        idx, contrib, counts = idx[keep], contrib[keep], counts[keep]
    if idx.size == 0:
        return []
    # Totals in the scratch array (zero before and after), an excluded item's at -inf.
    totals = _scratch(len(item_ids)).totals
    banned = np.fromiter(exclude, np.int64, len(exclude)) if exclude else None
    if banned is not None:
        totals[banned] = -np.inf
    np.add.at(totals, idx, contrib)
    t = totals[idx]
    totals[idx] = 0.0
    if banned is not None:
        totals[banned] = 0.0
    if rules.allowed is not None:
        t[~rules.allowed[idx]] = -np.inf
    room = rules.k + len(rules.pins)
    if rules.max_per_category is not None:
        room *= 4  # room for what the category cap will skip
    want = room * n_seeds
    if want <= 0:
        return []
    low = _TINY  # positive totals only
    if t.size > want:
        kth = t.copy()
        kth.partition(t.size - want)
        low = max(low, float(kth[t.size - want]))
    sel = (t >= low).nonzero()[0]
    if sel.size == 0:
        return []
    own = (np.repeat(np.arange(n_seeds), sizes) if owner is None else owner)[sel].tolist()
    groups: dict[int, list[Any]] = {}
    for j, total, c, o, n in zip(
        idx[sel].tolist(),
        t[sel].tolist(),
        contrib[sel].tolist(),
        own,
        counts[sel].tolist(),
        strict=True,
    ):
        group = groups.get(j)
        if group is None:
            groups[j] = group = [total]
        group.append((-c, o, n))
    # Highest total first; ties by item index keep answers stable across calls.
    best = sorted([(-group[0], j) for j, group in groups.items()])[:room]
    limit = rules.because_limit
    seed_indices = {x.index for x in seeds}
    out: list[tuple[Suggestion, int]] = []
    for _, j in best:
        group = groups[j]
        # The seeds behind it, strongest first (ties: cart order), contributing only.
        by_seed = sorted(group[1:])
        because = tuple(seeds[o].item_id for c, o, _ in by_seed[:limit] if c < 0)
        source = SOURCE_REPURCHASE if j in seed_indices else SOURCE_NEIGHBOURS
        evidence = by_seed[0][2] if because else 0
        out.append((Suggestion(item_ids[j], group[0], because, source, evidence), j))
    return out


SCAN_PER_ENTRY = 8
"""Finding the distinct candidates of E entries takes four passes over the entries, or
one sequential scan of the scratch totals over the catalog, which costs about an eighth
as much per element: a ranking scans when the catalog is under this many times E. Either
way the cost is at most the entries' one: it never grows with the catalog alone."""


def _rank_many(
    seeds: Sequence[Seed],
    item_ids: Sequence[str],
    exclude: set[int],
    rules: Rules,
) -> list[tuple[Suggestion, int]]:
    # A history's 100 seeds bring some 10,000 entries, and every pass over them costs
    # 10-20 µs: there are few (concatenate, weigh, accumulate, find the best candidates'
    # entries). Evidence counts are looked up for the few suggestions only.
    n_seeds = len(seeds)
    sizes = [x.indices.size for x in seeds]
    starts = [0, *itertools.accumulate(sizes)]
    idx = np.concatenate([x.indices for x in seeds])
    contrib = np.concatenate([x.scores for x in seeds]).astype(np.float64)
    if any(x.weight != 1.0 for x in seeds):
        contrib *= np.repeat(np.array([x.weight for x in seeds]), sizes)
    kept: IntArray | None = None  # positions in the lists of the entries kept
    if not rules.negatives and not all(x.positive_only for x in seeds):
        kept = (contrib > 0).nonzero()[0]
        idx, contrib = idx[kept], contrib[kept]
    n_listed = idx.size
    if rules.repurchase_weight > 0:  # each seed scores itself too (entries past the lists)
        weights = np.array([x.weight for x in seeds])
        idx = np.concatenate([idx, [x.index for x in seeds]])
        contrib = np.concatenate(
            [contrib, weights * rules.repurchase_weight + rules.repurchase_bonus]
        )
    room = rules.k + len(rules.pins)
    if rules.max_per_category is not None:
        room *= 4  # room for what the category cap will skip
    if idx.size == 0 or room <= 0:
        return []
    # Totals in a scratch array over the catalog, zero before and after (an excluded
    # item's at -inf while ranking).
    scratch = _scratch(len(item_ids))
    totals, marks = scratch.totals, scratch.marks
    banned = np.fromiter(exclude, np.int64, len(exclude)) if exclude else None
    if banned is not None:
        totals[banned] = -np.inf
    np.add.at(totals, idx, contrib)
    if len(item_ids) <= SCAN_PER_ENTRY * idx.size:
        candidates = np.flatnonzero(totals)
    else:
        entry = np.arange(idx.size)
        marks[idx] = entry
        candidates = idx[marks[idx] == entry]  # one entry per distinct item
        marks[candidates] = -1
    cand_totals = totals[candidates]
    totals[candidates] = 0.0
    if banned is not None:
        totals[banned] = 0.0
    ok = cand_totals > 0
    if rules.allowed is not None:
        ok &= rules.allowed[candidates]
    boosted: set[int] = set()
    for index, factor in rules.boost.items():
        hit = np.flatnonzero((candidates == index) & ok)
        if hit.size:
            cand_totals[hit] *= factor
            boosted.add(index)
    pos = np.flatnonzero(ok)
    if pos.size > room:
        # The room-th best total, and every candidate at or above it (ties included).
        edge = cand_totals[pos[np.argpartition(-cand_totals[pos], room - 1)[room - 1]]]
        pos = pos[cand_totals[pos] >= edge]
    # Highest score first; ties by item index keep answers stable across calls.
    pos = pos[np.lexsort((candidates[pos], -cand_totals[pos]))][:room]
    chosen, chosen_totals = candidates[pos], cand_totals[pos]
    # The chosen candidates' entries: one pass. A seed's list names an item once, so
    # each (candidate, seed) cell is one entry.
    marks[chosen] = np.arange(chosen.size)
    rows = marks[idx]
    marks[chosen] = -1
    hits = (rows >= 0).nonzero()[0]
    listed = hits < n_listed
    origin = hits[listed] if kept is None else kept[hits[listed]]
    seed_of = np.empty(hits.size, np.int64)
    seed_of[listed] = np.searchsorted(starts[1:], origin, side="right")
    seed_of[~listed] = hits[~listed] - n_listed
    place = np.full(hits.size, -1, np.int64)  # position in its seed's list (-1: itself)
    place[listed] = origin - np.asarray(starts)[seed_of[listed]]
    cells = (rows[hits], seed_of)
    by_seed = np.zeros((chosen.size, n_seeds))
    by_seed[cells] = contrib[hits]
    entry_of = np.full((chosen.size, n_seeds), -1, np.int64)
    entry_of[cells] = place
    # The seeds behind each suggestion, strongest first (ties: input order); only the
    # top few per row go back to Python.
    limit = rules.because_limit
    order = np.argsort(-by_seed, axis=1, kind="stable")[:, :limit]
    rows_at = np.arange(chosen.size)
    contributes = (by_seed[rows_at[:, None], order] > 0).tolist()
    top_seed = order[:, 0].tolist()
    top_place = entry_of[rows_at, order[:, 0]].tolist()
    order_rows = order.tolist()
    seed_ids = [x.item_id for x in seeds]
    seed_indices = {x.index for x in seeds}
    out: list[tuple[Suggestion, int]] = []
    for row, (j, total) in enumerate(zip(chosen.tolist(), chosen_totals.tolist(), strict=True)):
        because = tuple(
            seed_ids[o] for o, yes in zip(order_rows[row], contributes[row], strict=True) if yes
        )
        evidence = 0
        strongest = seeds[top_seed[row]]
        if because and top_place[row] >= 0 and strongest.counts is not None:
            evidence = int(strongest.counts[top_place[row]])
        source = SOURCE_REPURCHASE if j in seed_indices else SOURCE_NEIGHBOURS
        out.append((Suggestion(item_ids[j], total, because, source, evidence, j in boosted), j))
    return out


class _Scratch(threading.local):
    """Per thread: an all-zero float array, an all -1 int array and an all-False bool
    array over the catalog, borrowed by one ranking at a time and handed back as found."""

    def __init__(self) -> None:
        self.size = -1
        self.totals = np.zeros(0)
        self.marks = np.zeros(0, np.int64)
        self.flags = np.zeros(0, bool)


_SCRATCH = _Scratch()


def _scratch(n_items: int) -> _Scratch:
    if _SCRATCH.size != n_items:
        _SCRATCH.size = n_items
        _SCRATCH.totals = np.zeros(n_items)
        _SCRATCH.marks = np.full(n_items, -1, np.int64)
        _SCRATCH.flags = np.zeros(n_items, bool)
    return _SCRATCH


def _counts(seed: Seed) -> IntArray:
    return seed.counts if seed.counts is not None else np.zeros(seed.indices.size, np.int64)


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
