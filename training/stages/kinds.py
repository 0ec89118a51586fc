"""Whether two items are the same kind of product, for the upsell slot's alternatives.

An upsell offers a pricier alternative to a cart item: a better grinder for a grinder,
never coffee beans for a tea infuser. The catalog's category says it where both items
have one. Without one (no catalog, or an item it leaves uncategorised), the evidence is
their titles: they must share two distinctive words (or every one of a title that has
fewer), a word being distinctive when it names at most ``MAX_WORD_SHARE`` of the
catalog's items (or ``MIN_WORD_LIMIT`` in a small one: "dripper", "grinder"; not
"coffee" in a coffee shop, nor sizes and numbers). A pair
with neither is dropped: precision over recall, a store sees no upsell rather than an
unrelated one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from training.neighbours.base import Neighbours

MAX_WORD_SHARE = 0.2
"""A word in more than this share of titles says nothing about an item's kind..."""
MIN_WORD_LIMIT = 5
"""... though in a small catalog a word may name up to this many items ("mug" for three
mugs of a catalog of five)."""
MIN_SHARED_WORDS = 2
"""Distinctive words two titles must share (all of a shorter title's, when it has fewer).
Measured on Complete Journey's 20,000 product types against their categories: pairs
sharing one distinctive word were of one category 60% of the time, two 85% (random
pairs 0.8%)."""
MIN_WORD = 3
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_STOP = frozenset(
    {
        "and", "the", "for", "with", "set", "pack", "box", "bag", "size", "large", "small",
        "medium", "mini", "extra", "new", "old", "pcs", "und", "mit", "der", "die", "das",
        "les", "des", "pour", "avec",
    }
)  # fmt: skip


def words(title: str) -> frozenset[str]:
    """A title's words that can name a kind: letters only, three or more, no stop words."""
    found = (w.casefold() for w in _WORD.findall(title or ""))
    return frozenset(w for w in found if len(w) >= MIN_WORD and w not in _STOP)


class Kinds:
    """Per item: its category (or None) and its distinctive title words."""

    def __init__(self, facts: Sequence[dict[str, Any]]) -> None:
        self.category = [f.get("category") or None for f in facts]
        titles = [words(str(f.get("title", ""))) for f in facts]
        seen = Counter(w for t in titles for w in t)
        limit = max(float(MIN_WORD_LIMIT), MAX_WORD_SHARE * len(facts))
        self.words = [frozenset(w for w in t if seen[w] <= limit) for t in titles]

    def same(self, i: int, j: int) -> bool:
        a, b = self.category[i], self.category[j]
        if a is not None and b is not None:
            return bool(a == b)
        mine, theirs = self.words[i], self.words[j]
        needed = min(MIN_SHARED_WORDS, len(mine), len(theirs))
        return needed > 0 and len(mine & theirs) >= needed


def same_kind_only(alts: Neighbours, facts: Sequence[dict[str, Any]]) -> tuple[Neighbours, int]:
    """The alternatives with every pair of different kinds removed (rows kept best first,
    padded with -1), and how many entries were removed. Pairs whose items both have a
    category are judged at once; only the others compare titles."""
    kinds = Kinds(facts)
    names = {c: n for n, c in enumerate(sorted({c for c in kinds.category if c is not None}))}
    code = np.array([names.get(c, -1) if c is not None else -1 for c in kinds.category])
    idx = alts.indices
    valid = idx >= 0
    theirs = np.where(valid, code[np.maximum(idx, 0)], -1)
    mine = code[:, None]
    both = (mine >= 0) & (theirs >= 0)
    keep = valid & both & (theirs == mine)
    for i, k in zip(*np.nonzero(valid & ~both), strict=True):
        keep[i, k] = kinds.same(int(i), int(idx[i, k]))
    removed = int((valid & ~keep).sum())
    # Kept entries first, in their order (a stable sort of "not kept").
    order = np.argsort(~keep, axis=1, kind="stable")
    indices = np.take_along_axis(idx, order, axis=1)
    scores = np.take_along_axis(alts.scores, order, axis=1)
    kept = np.take_along_axis(keep, order, axis=1)
    indices = np.where(kept, indices, -1)
    scores = np.where(kept, scores, 0).astype(alts.scores.dtype)
    counts = None
    if alts.counts is not None:
        counts = np.where(kept, np.take_along_axis(alts.counts, order, axis=1), 0)
        counts = counts.astype(alts.counts.dtype)
    return Neighbours(indices, scores, counts), removed
