"""Ranking: a pure function of neighbour lists, the cart or history, and the rules.

No I/O happens here, so every rule is tested without a server and the request path spends
its time in one vectorised pass.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]

SOURCE_NEIGHBOURS = "neighbours"
SOURCE_REPURCHASE = "repurchase"
SOURCE_POPULAR = "popular"


@dataclass(frozen=True)
class Seed:
    """One known item of a cart or history, its weight, and its neighbour list."""

    item_id: str
    index: int
    weight: float
    indices: IntArray
    scores: FloatArray


@dataclass(frozen=True)
class Suggestion:
    item_id: str
    score: float
    because: tuple[str, ...]
    source: str


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


def rank(
    seeds: Sequence[Seed],
    item_ids: Sequence[str],
    popular: IntArray,
    rules: Rules,
) -> Ranking:
    """Ranks candidates by the weighted sum of their similarity to every seed.

    Each suggestion names the seeds that contributed most (``because``). When the seeds
    yield fewer than ``k`` candidates the rest are popular items, so a caller always gets
    ``k`` answers while the catalog allows it.
    """
    exclude = set(rules.exclude)
    chosen: list[Suggestion] = []
    if seeds:
        chosen = _rank_seeds(seeds, item_ids, exclude, rules)
    if len(chosen) < rules.k:
        taken = {s.item_id for s in chosen}
        chosen.extend(_popular_fill(popular, item_ids, exclude, taken, rules.k - len(chosen)))
    return Ranking(suggestions=tuple(chosen), fallback=not seeds)


def _rank_seeds(
    seeds: Sequence[Seed],
    item_ids: Sequence[str],
    exclude: set[int],
    rules: Rules,
) -> list[Suggestion]:
    # One vectorised pass, no Python loop per candidate: a cart touches a few hundred
    # (index, score) pairs, and per-pair Python work was most of a request's time.
    if rules.negatives:
        idx_parts = [s.indices for s in seeds]
        score_parts = [s.scores.astype(np.float64) * s.weight for s in seeds]
    else:
        kept = [s.scores > 0 for s in seeds]
        idx_parts = [s.indices[k] for s, k in zip(seeds, kept, strict=True)]
        score_parts = [
            s.scores[k].astype(np.float64) * s.weight for s, k in zip(seeds, kept, strict=True)
        ]
    owner_parts = [np.full(p.size, pos, dtype=np.int64) for pos, p in enumerate(idx_parts)]
    if rules.repurchase_weight > 0:
        idx_parts.append(np.array([s.index for s in seeds], dtype=np.int64))
        score_parts.append(
            np.array([s.weight * rules.repurchase_weight + rules.repurchase_bonus for s in seeds])
        )
        owner_parts.append(np.arange(len(seeds), dtype=np.int64))
    idx = np.concatenate(idx_parts)
    if idx.size == 0:
        return []
    contrib = np.concatenate(score_parts)
    owner = np.concatenate(owner_parts)
    candidates, inverse = np.unique(idx, return_inverse=True)
    totals = np.bincount(inverse, weights=contrib, minlength=candidates.size)
    if exclude:
        banned = np.fromiter(exclude, dtype=np.int64, count=len(exclude))
        at = np.searchsorted(candidates, banned)
        hit = at < candidates.size
        at = at[hit][candidates[at[hit]] == banned[hit]]
        totals[at] = 0.0
    allowed = np.flatnonzero(totals > 0)
    if allowed.size > rules.k:
        allowed = allowed[np.argpartition(-totals[allowed], rules.k - 1)[: rules.k]]
    # Highest score first; ties by index keep answers stable across calls.
    chosen = allowed[np.lexsort((candidates[allowed], -totals[allowed]))]
    # Each chosen candidate's contribution from each seed, from the entries naming a
    # chosen candidate only: a one-hot product over all entries and seeds was most of a
    # long history's time.
    row_of = np.full(candidates.size, -1, dtype=np.int64)
    row_of[chosen] = np.arange(chosen.size)
    rows = row_of[inverse]
    mine = rows >= 0
    by_seed = np.zeros((chosen.size, len(seeds)))
    np.add.at(by_seed, (rows[mine], owner[mine]), contrib[mine])
    order = np.argsort(-by_seed, axis=1, kind="stable")[:, : rules.because_limit]
    seed_indices = {s.index for s in seeds}
    out: list[Suggestion] = []
    for row, (pos, j) in enumerate(zip(chosen.tolist(), candidates[chosen].tolist(), strict=True)):
        because = tuple(seeds[o].item_id for o in order[row].tolist() if by_seed[row, o] > 0)
        out.append(
            Suggestion(
                item_id=item_ids[j],
                score=float(totals[pos]),
                because=because,
                source=SOURCE_REPURCHASE if j in seed_indices else SOURCE_NEIGHBOURS,
            )
        )
    return out


def _popular_fill(
    popular: IntArray,
    item_ids: Sequence[str],
    exclude: set[int],
    taken: set[str],
    wanted: int,
) -> list[Suggestion]:
    out: list[Suggestion] = []
    for rank_pos, index in enumerate(popular.tolist()):
        if len(out) == wanted:
            break
        item_id = item_ids[index]
        if index in exclude or item_id in taken:
            continue
        # Popular items score below every neighbour-based one, in popularity order.
        out.append(
            Suggestion(
                item_id=item_id,
                score=0.0 - rank_pos * 1e-9,
                because=(),
                source=SOURCE_POPULAR,
            )
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
