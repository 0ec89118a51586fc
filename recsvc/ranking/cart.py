"""A cart's or a history's suggestions: the seeds' lists merged in one vectorised pass
(few seeds: a heap-free merge; many: a scan of each list's head), then new items in their
category and best-sellers to fill."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from recsvc.ranking.suggestions import (
    NEW_ITEMS_PER_ANSWER,
    SOURCE_NEIGHBOURS,
    SOURCE_NEW,
    SOURCE_PINNED,
    SOURCE_POPULAR,
    SOURCE_REPURCHASE,
    IntArray,
    Ranking,
    Rules,
    Seed,
    Suggestion,
)


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
    ranked = _rank_seeds(seeds, item_ids, exclude, rules) if seeds else []
    return rank_ranked(ranked, [s.index for s in seeds], item_ids, popular, rules, fresh, exclude)


def rank_ranked(
    ranked: Sequence[tuple[Suggestion, int]],
    seed_indices: Collection[int],
    item_ids: Sequence[str],
    popular: IntArray,
    rules: Rules,
    fresh: Sequence[int] = (),
    exclude: set[int] | None = None,
) -> Ranking:
    """``rank``'s answer from its candidates already ranked (best first, with their item
    indices): pins, then the candidates that pass the rules, popular items to fill and new
    items placed. ``rank`` ranks the seeds' lists on request; a stored customer's
    candidates come ranked by the trainer (``recsvc.answers.picks``). ``seed_indices``:
    the seeds' items (none: the answer is a fallback)."""
    exclude = set(rules.exclude) if exclude is None else exclude
    picker = _Picker(rules, exclude, item_ids)
    for index in rules.pins:
        picker.offer(index, Suggestion(item_ids[index], 0.0, (), SOURCE_PINNED))
    for suggestion, index in ranked:
        if picker.full():
            break
        picker.offer(index, suggestion)
    if not picker.full():
        _popular_fill(popular, item_ids, picker)
    chosen = picker.chosen
    if fresh and seed_indices and rules.category is not None:
        chosen = place_new(picker, fresh, seed_indices, item_ids)
    return Ranking(suggestions=tuple(chosen), fallback=not seed_indices)


def room_for(rules: Rules) -> int:
    """How many ranked candidates an answer under ``rules`` looks at: its k and pins, and
    four times that under a category cap (room for what the cap skips)."""
    room = rules.k + len(rules.pins)
    return room * 4 if rules.max_per_category is not None else room


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
    room = room_for(rules)
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
    room = room_for(rules)
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
