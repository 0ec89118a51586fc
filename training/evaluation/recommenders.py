"""What is scored: a ``Recommender`` answers a cart or a history with ranked item codes;
best-sellers, a customer's own past purchases, neighbour lists and ALS factors are each
one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from training.evaluation.cases import CartCase, HistoryCase
from training.neighbours.base import unit_rows

KS = (1, 5, 10, 20)
"""The cutoffs every task is scored at."""
K_MAIN = 10
"""The cutoff the headline numbers and the gate use."""

TOP = max(KS)


Ask = tuple[list[int], list[float] | None, list[int]]
"""One answer to give: input items, their weights (None: alike), items to leave out."""


@dataclass
class Recommender:
    """Top item indices for a cart, and for a history (the flag: exclude bought items)."""

    name: str
    cart: Callable[[list[int]], list[int]]
    history: Callable[[HistoryCase, bool], list[int]]
    stats: dict[str, int] = field(default_factory=dict)
    """Counts a recommender may keep: answers, and answers filled from popular items."""
    many: (
        Callable[[list[tuple[list[int], list[float] | None, list[int]]]], list[list[int]]] | None
    ) = None
    """Optional batch form: (input items, their weights or None, items to exclude) per
    answer, all at once (a method that scores whole matrices at a time)."""
    cart_case: Callable[[CartCase], list[int]] | None = None
    """Optional: the answer for a whole cart case, quantities included (the served one)."""
    tasks: frozenset[str] = frozenset({"cart", "next", "next_new"})
    """The tasks the method answers; the others are not scored (a personal method has no
    answer for an anonymous cart)."""
    params: dict[str, Any] = field(default_factory=dict)
    """The settings it ran with, per task when they were tuned per task."""


class Popular:
    """Items by popularity, to fill a short answer: cost grows with the answer, not items."""

    def __init__(self, pop: np.ndarray) -> None:
        self.order = np.argsort(-pop, kind="stable")

    def fill(self, head: list[int], exclude: Sequence[int]) -> list[int]:
        if len(head) >= TOP:
            return head[:TOP]
        skip = set(head) | set(exclude)
        out = list(head)
        for i in self.order:
            j = int(i)
            if j not in skip:
                out.append(j)
                if len(out) >= TOP:
                    break
        return out


def ranked(cands: np.ndarray, totals: np.ndarray, exclude: Sequence[int]) -> list[int]:
    """Candidates with a positive total, best first, excluded items left out."""
    keep = totals > 0
    if len(exclude):
        keep &= ~np.isin(cands, np.asarray(exclude))
    cands, totals = cands[keep], totals[keep]
    if cands.size > TOP:
        part = np.argpartition(-totals, TOP)[:TOP]
        cands, totals = cands[part], totals[part]
    order = np.lexsort((cands, -totals))
    return [int(i) for i in cands[order]]


def popularity_recommender(pop: np.ndarray) -> Recommender:
    popular = Popular(pop)

    def cart(items: list[int]) -> list[int]:
        return popular.fill([], items)

    def history(case: HistoryCase, exclude: bool) -> list[int]:
        return popular.fill([], case.items if exclude else [])

    return Recommender("popularity", cart, history)


def past_purchases_recommender(n_items: int, pop: np.ndarray) -> Recommender:
    """Re-suggests what the customer bought, most (and most recently) bought first."""
    popular = Popular(pop)
    tie = pop / (pop.max() + 1.0) if pop.size else pop

    def history(case: HistoryCase, exclude: bool) -> list[int]:
        if exclude:
            return popular.fill([], case.items)
        bought = np.asarray(case.items, np.int64)
        scores = np.asarray(case.weights) + 1.0 + tie[bought]
        return popular.fill(ranked(bought, scores, []), [])

    return Recommender("past purchases", lambda items: popular.fill([], items), history)


def lists_recommender(name: str, lists: sp.csr_matrix, pop: np.ndarray) -> Recommender:
    """Sums the (sparse, top-N) similarity rows of the input items; popular items fill.

    Each answer costs the rows it reads, never the catalog: the baselines score large
    catalogs the way the service serves them.
    """
    sim = sp.csr_matrix(lists, dtype=np.float32)
    n_items = sim.shape[0]
    sim.setdiag(0.0)
    sim.eliminate_zeros()
    popular = Popular(pop)

    def scores(
        items: Sequence[int], weights: Sequence[float] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        rows = sim[np.asarray(items, np.int64)]
        vals = rows.data
        if weights is not None:
            vals = vals * np.repeat(np.asarray(weights, np.float32), np.diff(rows.indptr))
        if rows.nnz > n_items // 8:
            # Long histories: one pass over the catalog beats sorting their entries.
            totals = np.bincount(rows.indices, weights=vals, minlength=n_items)
            cands = np.flatnonzero(totals)
            return cands, totals[cands]
        cands, inv = np.unique(rows.indices, return_inverse=True)
        return cands, np.bincount(inv, weights=vals, minlength=cands.size)

    def cart(items: list[int]) -> list[int]:
        cands, totals = scores(items, None)
        return popular.fill(ranked(cands, totals, items), items)

    def history(case: HistoryCase, exclude: bool) -> list[int]:
        cands, totals = scores(case.items, case.weights)
        skip = case.items if exclude else []
        return popular.fill(ranked(cands, totals, skip), skip)

    return Recommender(name, cart, history)


def factors_recommender(name: str, factors: np.ndarray, pop: np.ndarray) -> Recommender:
    """Cosine of item factors to the sum of the input items' unit factors.

    Scored per answer against every item's factors (items x factors, never items^2).
    """
    unit = unit_rows(factors)
    popular = Popular(pop)

    def top(query: np.ndarray, exclude: Sequence[int]) -> list[int]:
        totals = unit @ query
        cands = np.arange(totals.size)
        return popular.fill(ranked(cands, totals, exclude), exclude)

    def cart(items: list[int]) -> list[int]:
        return top(unit[items].sum(axis=0), items)

    def history(case: HistoryCase, exclude: bool) -> list[int]:
        query = np.asarray(case.weights, np.float32) @ unit[case.items]
        return top(query, case.items if exclude else [])

    def many(asks: Sequence[Ask]) -> list[list[int]]:
        """The same answers, a matrix product per chunk of asks instead of one each."""
        out: list[list[int]] = []
        for lo in range(0, len(asks), 256):
            chunk = asks[lo : lo + 256]
            queries = np.stack(
                [
                    (np.ones(len(items), np.float32) if w is None else np.asarray(w, np.float32))
                    @ unit[items]
                    for items, w, _ in chunk
                ]
            )
            scores = queries @ unit.T
            for row, (_, _, exclude) in enumerate(chunk):
                if exclude:
                    scores[row, exclude] = -np.inf
            k = min(TOP, scores.shape[1] - 1)
            part = np.argpartition(-scores, k, axis=1)[:, :k]
            for row, (_, _, exclude) in enumerate(chunk):
                cands = part[row]
                out.append(popular.fill(ranked(cands, scores[row, cands], []), exclude))
        return out

    return Recommender(name, cart, history, many=many)


def neighbours_matrix(nb: Any, n_items: int) -> sp.csr_matrix:
    """Padded neighbour lists (``training.neighbours.base.Neighbours``) as a sparse matrix."""
    rows = np.repeat(np.arange(n_items), nb.indices.shape[1])
    cols = nb.indices.ravel()
    keep = cols >= 0
    return sp.csr_matrix(
        (nb.scores.ravel()[keep], (rows[keep], cols[keep])), shape=(n_items, n_items)
    )
