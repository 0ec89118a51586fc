"""How much a past purchase counts by its age (a half-life)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime


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
