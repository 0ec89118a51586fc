"""A stored customer's suggestions ranked by the trainer (picks), and how they are served.

The trainer ranks each stored customer's history as the service ranks it for a request
without rules of its own (purchased items excluded, the service's default half-life and
``because`` limit), and keeps the best ``n`` candidates with their scores, seeds and
evidence beside the history (``model.Picks``). A request filters them by stock,
deletions and its rules, and cuts them to k: the answer ranking the lists online gives,
from the one read of the history and no lists, whenever the picks can tell it:

- purchased items are excluded, and the service's half-life and ``because`` limit are
  those the picks were made with;
- the rules boost nothing (a boost reorders candidates the picks may have cut);
- no live order event has changed the history since the training;
- the filters leave more candidates than the answer looks at (``ranking.room_for``), or
  the picks hold every candidate the history has.

Otherwise (``answer`` returns None) the customer is ranked online, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsvc import model as lay
from recsvc.answers import recommend as rec
from recsvc.config import Settings
from recsvc.ranking import (
    SOURCE_NEIGHBOURS,
    Ranking,
    Rules,
    Suggestion,
    rank,
    rank_ranked,
    room_for,
)
from recsvc.ranking.rules import MerchRules
from recsvc.store import AnswerWith, ItemList, ModelView, StoredHistory

PICKS_PER_CUSTOMER = 50
"""Candidates kept per stored customer: room for a ten-item answer under stock changes,
rules and a category cap (which looks at four times k)."""

_NO_POPULAR = np.zeros(0, np.int64)


@dataclass(frozen=True)
class PickRecipe:
    """How a version's picks were ranked (``meta["picks"]``): a service with other
    settings ranks online."""

    n: int
    half_life_days: float
    because_limit: int

    def as_meta(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "half_life_days": self.half_life_days,
            "because_limit": self.because_limit,
        }

    @classmethod
    def of(cls, meta: Mapping[str, Any]) -> PickRecipe | None:
        raw = meta.get("picks")
        if not isinstance(raw, Mapping):
            return None
        return cls(int(raw["n"]), float(raw["half_life_days"]), int(raw["because_limit"]))

    @classmethod
    def for_settings(cls, settings: Settings, n: int = PICKS_PER_CUSTOMER) -> PickRecipe:
        return cls(n, settings.history_half_life_days, settings.because_limit)

    def serves(self, settings: Settings) -> bool:
        return (
            self.half_life_days == settings.history_half_life_days
            and self.because_limit == settings.because_limit
        )


def make_picks(
    recipe: PickRecipe,
    index: Mapping[str, int],
    item_ids: Sequence[str],
    history: StoredHistory,
    lists: Callable[[str], ItemList | None],
) -> bytes | None:
    """A stored customer's packed picks, ranked as ``rec.rank_history`` ranks them (None:
    no item of the history has a list, and the answer is best-sellers)."""
    weights = rec.stored_weights(history, recipe.half_life_days)
    ids = list(weights)
    got = [lists(i) if i in index else None for i in ids]
    seeds = rec.seeds(index, ids, [weights[i] for i in ids], got, positive_only=True)
    if not seeds:
        return None
    rules = Rules(
        k=recipe.n,
        exclude={index[i] for i in ids if i in index},
        because_limit=recipe.because_limit,
        negatives=False,
    )
    ranked = rank(seeds, item_ids, _NO_POPULAR, rules).suggestions
    position = {item: p for p, item in enumerate(history.item_ids)}
    return lay.encode_picks(
        [index[s.item_id] for s in ranked],
        [s.score for s in ranked],
        [[position[b] for b in s.because] for s in ranked],
        [s.evidence for s in ranked],
        complete=len(ranked) < recipe.n,
    )


def answer(
    view: ModelView,
    settings: Settings,
    history: StoredHistory,
    k: int,
    exclude_purchased: bool,
    request_rules: MerchRules | None = None,
) -> Ranking | None:
    """A stored customer's answer without their lists, or None: rank online."""
    if view.meta.get("serving", {}).get("history_recipe") == "popular":
        # Best-sellers under the rules: no list is read either way.
        return rec.rank_stored(view, settings, history, [], k, exclude_purchased, request_rules)
    if history.picks is None or not exclude_purchased:
        return None
    recipe = PickRecipe.of(view.meta)
    if recipe is None or not recipe.serves(settings):
        return None
    parts = rec.rule_parts(view, settings, request_rules)
    if parts["boost"]:
        return None
    rules = Rules(k=k, exclude=set(), negatives=False, **parts)
    try:
        picks = lay.decode_picks(history.picks)
    except ValueError:
        return None  # unreadable: the history itself still ranks online
    room = room_for(rules)
    if rules.allowed is None:
        passing: list[int] = list(range(min(len(picks), room)))
    else:
        passing = np.flatnonzero(rules.allowed[picks.indices])[:room].tolist()
    if len(passing) < room and not picks.complete:
        return None  # the filters took too many: the best after them may be past the picks
    ids, item_ids = history.item_ids, view.item_ids
    indices, scores, evidence = picks.indices.tolist(), picks.scores, picks.evidence
    starts, positions = picks.starts(), picks.because_positions
    ranked = []
    for entry in passing:
        j = indices[entry]
        because = tuple([ids[p] for p in positions[starts[entry] : starts[entry + 1]]])
        suggestion = Suggestion(
            item_ids[j], scores[entry], because, SOURCE_NEIGHBOURS, evidence[entry]
        )
        ranked.append((suggestion, j))
    if (
        rules.pins
        or len(ranked) < k
        or rules.max_per_category is not None
        or (view.fresh and rules.category is not None)
    ):
        # Pins, the popular fill, a category cap and new items' placement need the
        # purchases (to exclude) and the seeds (history items the model knows).
        bought = _bought(view, history)
        seeded = [i for i in bought if i < view.model_items]
        return rank_ranked(ranked, seeded, item_ids, view.popular, rules, view.fresh, bought)
    # The first k picks are the answer: they hold no purchase (nothing to exclude), and
    # are only made from seeds (no fallback), so the history need not be looked up.
    return rank_ranked(ranked[:k], (ranked[0][1],), item_ids, view.popular, rules)


def _bought(view: ModelView, history: StoredHistory) -> set[int]:
    """The model indices of a history's items (those the version knows)."""
    found = set(map(view.index.get, history.item_ids))
    found.discard(None)
    return found  # type: ignore[return-value]


def answering(
    settings: Settings, k: int, exclude_purchased: bool, request_rules: MerchRules | None = None
) -> AnswerWith:
    """``answer`` for the store's read (``ModelStore.customers``), one request's terms."""

    def answer_with(view: ModelView, history: StoredHistory) -> Ranking | None:
        return answer(view, settings, history, k, exclude_purchased, request_rules)

    return answer_with
