"""What every endpoint and the export share: turn fetched lists into a rendered answer.

Routes, the batch endpoint and ``recsvc export`` all go through these functions, so a
customer gets the same suggestions from each. Rendering adds the attribution fields: a
recommendation id per answer and a position per suggestion.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from recsvc.config import Settings
from recsvc.ranking import Ranking, Rules, Seed, rank, recency_weights
from recsvc.store import ModelView, StoredHistory, decode_neighbours

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def new_recommendation_id() -> str:
    """Random, URL-safe, and short enough for a click URL."""
    return secrets.token_hex(8)


def seeds(
    view: ModelView,
    item_ids: Sequence[str],
    weights: Sequence[float],
    blobs: Sequence[bytes | None],
) -> list[Seed]:
    out = []
    for item_id, weight, blob in zip(item_ids, weights, blobs, strict=True):
        if blob is None:
            continue  # unknown to this model: ignored, as documented
        indices, scores = decode_neighbours(blob)
        out.append(Seed(item_id, view.index[item_id], weight, indices, scores))
    return out


def rank_cart(
    view: ModelView, settings: Settings, ids: Sequence[str], blobs: Sequence[bytes | None], k: int
) -> Ranking:
    in_cart = {view.index[i] for i in ids if i in view.index}
    return rank(
        seeds(view, ids, [1.0] * len(ids), blobs),
        view.item_ids,
        view.popular,
        Rules(k=k, exclude=in_cart, because_limit=settings.because_limit),
    )


def history_weights(
    item_ids: Sequence[str], times: Sequence[datetime | None], half_life_days: float
) -> dict[str, float]:
    """A repeated item adds up its recency weights: bought often and lately weighs most."""
    weights: dict[str, float] = {}
    for item_id, weight in zip(item_ids, recency_weights(times, half_life_days), strict=True):
        weights[item_id] = weights.get(item_id, 0.0) + weight
    return weights


def stored_times(history: StoredHistory) -> list[datetime | None]:
    return [None if d < 0 else _EPOCH + timedelta(days=d) for d in history.days]


def rank_history(
    view: ModelView,
    settings: Settings,
    weights: dict[str, float],
    blobs: Sequence[bytes | None],
    k: int,
    exclude_purchased: bool,
) -> Ranking:
    ids = list(weights)
    bought = {view.index[i] for i in ids if i in view.index}
    serving = view.meta.get("serving", {})
    rules = Rules(
        k=k,
        exclude=bought if exclude_purchased else frozenset(),
        repurchase_weight=0.0 if exclude_purchased else float(serving.get("repurchase_weight", 0)),
        repurchase_bonus=float(serving.get("repurchase_bonus", 0.0)),
        because_limit=settings.because_limit,
        negatives=False,
    )
    return rank(
        seeds(view, ids, [weights[i] for i in ids], blobs), view.item_ids, view.popular, rules
    )


def rank_stored(
    view: ModelView,
    settings: Settings,
    history: StoredHistory | None,
    blobs: Sequence[bytes | None],
    k: int,
    exclude_purchased: bool,
) -> Ranking:
    """A stored customer's suggestions; an unknown customer gets popular items (fallback)."""
    if history is None:
        return rank([], view.item_ids, view.popular, Rules(k=k))
    weights = history_weights(
        history.item_ids, stored_times(history), settings.history_half_life_days
    )
    return rank_history(view, settings, weights, blobs, k, exclude_purchased)


def suggestions(ranking: Ranking) -> list[dict[str, Any]]:
    return [
        {
            "item_id": s.item_id,
            "position": pos,
            "score": s.score,
            "because": s.because,
            "source": s.source,
        }
        for pos, s in enumerate(ranking.suggestions, start=1)
    ]


def render(view: ModelView, ranking: Ranking, slot: str, **extra: Any) -> dict[str, Any]:
    return {
        "recommendation_id": new_recommendation_id(),
        "model_version": view.version,
        **extra,
        slot: suggestions(ranking),
        "fallback": ranking.fallback,
    }
