"""What every endpoint and the export share: turn fetched lists into a rendered answer.

Routes, the batch endpoint and ``recsvc export`` all go through these functions, so a
customer gets the same suggestions from each. Rendering adds the attribution fields: a
recommendation id per answer and a position per suggestion.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from recsvc import model as lay
from recsvc.config import Settings
from recsvc.experiments.attribution import recommendation_id
from recsvc.experiments.experiment import LIVE, Served
from recsvc.ranking import (
    SOURCE_NEW,
    SOURCE_PINNED,
    SOURCE_POPULAR,
    SOURCE_REPURCHASE,
    PriceBand,
    Ranking,
    Rules,
    Seed,
    Suggestion,
    Upsell,
    UpsellEntry,
    band_alternatives,
    rank,
    recency_weights,
    upsell,
)
from recsvc.ranking.rules import MerchRules
from recsvc.store import ItemList, ModelView, StoredHistory

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def new_recommendation_id(version: str, served: Served = LIVE) -> str:
    """URL-safe, short enough for a click URL, and naming its version and arm, so an order
    that carries it is credited to the answer (``recsvc.experiments.attribution``)."""
    return recommendation_id(version, served.arm, served.test)


def seeds(
    index: Mapping[str, int],
    item_ids: Sequence[str],
    weights: Sequence[float],
    lists: Sequence[ItemList | None],
    positive_only: bool = False,
) -> list[Seed]:
    out = []
    for item_id, weight, got in zip(item_ids, weights, lists, strict=True):
        if got is None:
            continue  # unknown to this model: ignored, as documented
        if positive_only and got.positive is not None:
            got = got.positive
        out.append(
            Seed(
                item_id,
                index[item_id],
                weight,
                got.indices,
                got.scores,
                got.counts,
                positive_only,
            )
        )
    return out


def quantity_weight(quantity: int) -> float:
    """Three of an item pull its complements harder than one, but not three times."""
    return 1.0 + 0.5 * math.log(max(quantity, 1))


def merch_rules(
    view: ModelView,
    settings: Settings,
    request: MerchRules | None,
    k: int,
    exclude: Collection[int],
    **extra: Any,
) -> Rules:
    return Rules(k=k, exclude=exclude, **rule_parts(view, settings, request), **extra)


def rule_parts(view: ModelView, settings: Settings, request: MerchRules | None) -> dict[str, Any]:
    """What a request's rules (on top of the defaults) make of this view's catalog. Without
    request rules it is the same every time: kept on the view (a stock change makes a new
    view, and so new parts)."""
    if request is None and view.default_rule_parts:
        return view.default_rule_parts
    merged = settings.default_rules.merged(request)
    parts = {
        "because_limit": settings.because_limit,
        "allowed": view.allowed(merged),
        "category": view.arrays.category,
        "max_per_category": merged.max_per_category,
        "boost": {view.index[i]: f for i, f in merged.boost.items() if i in view.index},
        "pins": [view.index[i] for i in merged.pin if i in view.index],
    }
    if request is None:
        view.default_rule_parts.update(parts)
    return parts


@dataclass(frozen=True)
class CartAnswer:
    cross_sell: Ranking
    upsell: list[Upsell]


def rank_cart(
    view: ModelView,
    settings: Settings,
    lines: Sequence[tuple[str, int]],
    lists: Sequence[ItemList | None],
    k: int,
    request_rules: MerchRules | None = None,
    alternatives: Sequence[ItemList | None] | None = None,
    upsell_k: int = 0,
    band: PriceBand | None = None,
) -> CartAnswer:
    """Cross-sell (complements of the whole cart) and upsell (pricier alternatives).

    The two slots never share an item, and neither holds a cart item. Upsell is picked
    first: its candidates are few (alternatives within a price band), while cross-sell
    has many complements and popular filler that could otherwise take them all.
    """
    ids = [i for i, _ in lines]
    weights = [quantity_weight(q) for _, q in lines]
    in_cart = {view.index[i] for i in ids if i in view.index}
    parts = rule_parts(view, settings, request_rules)
    ups: list[Upsell] = []
    if upsell_k > 0 and alternatives is not None:
        up_rules = Rules(k=upsell_k, exclude=in_cart, **{**parts, "pins": (), "boost": {}})
        band = band or PriceBand(settings.upsell_min_ratio, settings.upsell_max_ratio)
        sources = seeds(view.index, ids, weights, alternatives)
        ups = upsell(
            sources,
            view.item_ids,
            view.popular,
            view.arrays.price,
            up_rules,
            band,
            view.margin,
            [_band_alternatives(view, source, band) for source in sources],
        )
    exclude = in_cart | {view.index[u.item_id] for u in ups} if ups else in_cart
    rules = Rules(k=k, exclude=exclude, **parts)
    cross = rank(
        seeds(view.index, ids, weights, lists), view.item_ids, view.popular, rules, view.fresh
    )
    return CartAnswer(cross, ups)


def rank_similar(
    view: ModelView,
    settings: Settings,
    item_id: str,
    got: ItemList,
    k: int,
    request_rules: MerchRules | None = None,
) -> Ranking:
    """One item's nearest neighbours (its positive weights: negatives are items bought
    instead, not similar ones) under stock, the default rules and the request's, ranked
    as a one-item cart's; no popular filler (an item with fewer neighbours gets fewer)."""
    parts = rule_parts(view, settings, request_rules)
    rules = Rules(k=k, exclude={view.index[item_id]}, **parts)
    found = seeds(view.index, [item_id], [1.0], [got], positive_only=True)
    ranking = rank(found, view.item_ids, view.popular, rules, view.fresh)
    kept = tuple(s for s in ranking.suggestions if s.source != SOURCE_POPULAR)
    return Ranking(suggestions=kept, fallback=False)


def _band_alternatives(view: ModelView, source: Seed, band: PriceBand) -> list[UpsellEntry]:
    """A cart item's qualifying alternatives, made once per view and band."""
    key = (source.index, band.low, band.high)
    kept = view.upsell_lists.get(key)
    if kept is None:
        kept = band_alternatives(source, view.arrays.price, view.arrays.category, band, view.margin)
        view.upsell_lists.put(key, kept, _UPSELL_ENTRY_BYTES * (len(kept) + 1))
    return kept


_UPSELL_ENTRY_BYTES = 200
"""A kept upsell alternative's size: a tuple of four Python numbers, and its list slot."""


def history_weights(
    item_ids: Sequence[str], times: Sequence[datetime | None], half_life_days: float
) -> dict[str, float]:
    """A repeated item adds up its recency weights: bought often and lately weighs most."""
    weights: dict[str, float] = {}
    for item_id, weight in zip(item_ids, recency_weights(times, half_life_days), strict=True):
        weights[item_id] = weights.get(item_id, 0.0) + weight
    return weights


def stored_weights(history: StoredHistory, half_life_days: float) -> dict[str, float]:
    """Each stored item's weight: the orders it was bought in, decayed by the age of its
    latest purchase (``history_weights`` of the same days, times the count), from the day
    numbers directly; an undated purchase counts as the latest."""
    latest = history.last_day
    weights: dict[str, float] = {}
    for item_id, day, n in zip(history.item_ids, history.days, history.count_list(), strict=True):
        weight = n if day < 0 else n * 0.5 ** ((latest - day) / half_life_days)
        weights[item_id] = weights.get(item_id, 0.0) + weight
    return weights


def rank_history(
    view: ModelView,
    settings: Settings,
    weights: dict[str, float],
    lists: Sequence[ItemList | None],
    k: int,
    exclude_purchased: bool,
    request_rules: MerchRules | None = None,
) -> Ranking:
    ids = list(weights)
    bought = {view.index[i] for i in ids if i in view.index}
    serving = view.meta.get("serving", {})
    rules = merch_rules(
        view,
        settings,
        request_rules,
        k,
        bought if exclude_purchased else frozenset(),
        repurchase_weight=0.0 if exclude_purchased else float(serving.get("repurchase_weight", 0)),
        repurchase_bonus=float(serving.get("repurchase_bonus", 0.0)),
        negatives=False,
    )
    if serving.get("history_recipe") == "popular":
        # The version's trainer found best-sellers beat its lists for customers (on its
        # validation window): they are served, under the same rules and exclusions.
        return rank([], view.item_ids, view.popular, rules)
    return rank(
        seeds(view.index, ids, [weights[i] for i in ids], lists, positive_only=True),
        view.item_ids,
        view.popular,
        rules,
        view.fresh,
    )


def rank_stored(
    view: ModelView,
    settings: Settings,
    history: StoredHistory | None,
    lists: Sequence[ItemList | None],
    k: int,
    exclude_purchased: bool,
    request_rules: MerchRules | None = None,
) -> Ranking:
    """A stored customer's suggestions; an unknown customer gets popular items (fallback)."""
    if history is None:
        rules = merch_rules(view, settings, request_rules, k, frozenset())
        return rank([], view.item_ids, view.popular, rules)
    weights = stored_weights(history, settings.history_half_life_days)
    return rank_history(view, settings, weights, lists, k, exclude_purchased, request_rules)


def _facts(view: ModelView, item_id: str) -> dict[str, Any]:
    """An item's catalog facts as a response shows them, made once per view."""
    kept = view.facts.get(item_id)
    if kept is None:
        kept = view.facts[item_id] = _make_facts(view, item_id)
    return kept


def _make_facts(view: ModelView, item_id: str) -> dict[str, Any]:
    at = view.index.get(item_id)
    facts = view.catalog[at] if at is not None and view.catalog else {}
    out = {
        "title": facts.get("title", ""),
        "price": facts.get("price"),
        "category": facts.get("category"),
    }
    for extra in ("brand", "image_url", "url", "currency"):
        if extra in facts:
            out[extra] = facts[extra]
    return out


def counted(n: int, noun: str) -> str:
    """``n`` and the noun as English writes them: "1 order", "12 orders"."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def reason(view: ModelView, s: Suggestion) -> str:
    if s.source == SOURCE_PINNED:
        return "campaign"
    if s.source == SOURCE_POPULAR:
        n = view.popular_counts.get(view.index.get(s.item_id, -1), 0)
        return f"popular: bought by {counted(n, 'customer')}" if n else "popular"
    if s.source == SOURCE_REPURCHASE:
        return "bought before"
    if s.source == SOURCE_NEW:
        category = _facts(view, s.item_id).get("category")
        return f"new in {category}" if category else "new"
    text = f"bought together with {s.because[0]}" if s.because else "goes with your items"
    if s.because and s.evidence:
        text += f" in {counted(s.evidence, 'order')}"
    return text + (" (campaign boost)" if s.boosted else "")


def suggestions(view: ModelView, ranking: Ranking, stored: bool = False) -> list[dict[str, Any]]:
    """Rendered suggestions. A stored customer's (``stored``) have their scores at the
    picks' precision (``recsvc.model.score_precision``: about three significant digits),
    the same whether ranked online or read from the trainer's picks
    (``recsvc.answers.picks``)."""
    scores: list[float] = [s.score for s in ranking.suggestions]
    if stored:
        scores = lay.score_precision(scores)
    return [
        {
            "item_id": s.item_id,
            "position": pos,
            **_facts(view, s.item_id),
            "score": score,
            "because": s.because,
            "reason": reason(view, s),
            "source": s.source,
            "boosted": s.boosted,
        }
        for pos, (s, score) in enumerate(zip(ranking.suggestions, scores, strict=True), start=1)
    ]


def upsell_entries(view: ModelView, entries: Sequence[Upsell]) -> list[dict[str, Any]]:
    out = []
    for pos, u in enumerate(entries, start=1):
        why = f"alternative to {u.upgrades}, +{u.price_difference:.2f}"
        if u.evidence:
            why += f"; {u.evidence} customers bought both"
        if u.source == SOURCE_POPULAR:
            why = f"popular, priced +{u.price_difference:.2f} above {u.upgrades}"
        out.append(
            {
                "item_id": u.item_id,
                "position": pos,
                **_facts(view, u.item_id),
                "upgrades": u.upgrades,
                "price_difference": round(u.price_difference, 4),
                "score": u.score,
                "reason": why,
                "source": u.source,
            }
        )
    return out


def render(
    view: ModelView,
    ranking: Ranking,
    slot: str,
    served: Served = LIVE,
    stored: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "recommendation_id": new_recommendation_id(view.version, served),
        "model_version": view.version,
        "arm": served.arm,
        **extra,
        slot: suggestions(view, ranking, stored),
        "fallback": ranking.fallback,
    }


def render_cart(view: ModelView, answer: CartAnswer, served: Served = LIVE) -> dict[str, Any]:
    ups = upsell_entries(view, answer.upsell)
    return {
        **render(view, answer.cross_sell, "cross_sell", served),
        "upsell": ups,
        "upsell_fallback": bool(ups) and all(u["source"] == SOURCE_POPULAR for u in ups),
    }
