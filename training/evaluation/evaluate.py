"""Stage 5: offline evaluation on a temporal holdout, with baselines, in one run.

Two tasks, one per caller:
- cart completion (the cart widget): every test order with at least two items the model
  knows; one item is hidden (seeded), the rest is the cart; where does the hidden one rank?
- next purchases (the e-mail generator): every customer with purchases on both sides of
  the cutoff; from the history before it, which items bought after it are found? Scored
  with repurchases counted (the recommender may suggest what was bought before) and
  without (only new items count, and bought items are excluded).

"served" runs the service's own ranking (``recsvc.answers.recommend``) on the neighbour lists
the trainer would publish, so the number measured is the number users get: carts with
their quantities, next purchases from the histories the trainer stores (as the e-mail
path reads them). The tuned baselines are ``training.evaluation.baselines``; the upsell slot is
scored in ``training.stages.upsell``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsvc import model as lay
from recsvc.answers import recommend as rec
from recsvc.config import Settings
from recsvc.ranking import SOURCE_POPULAR, Ranking
from recsvc.store import ItemList, ModelView, StoredHistory
from training.errors import InputError
from training.neighbours.methods import Neighbours, unit_rows
from training.publish.publisher import ModelPayload
from training.stages import ingest
from training.stages.histories import recent_items

KS = (1, 5, 10, 20)
K_MAIN = 10
CART = "cart"
NEXT = "next"
NEXT_NEW = "next_new"
SERVED = "recsvc (served)"


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    test: pd.DataFrame
    cutoff: pd.Timestamp


def temporal_split(frame: pd.DataFrame, cutoff: pd.Timestamp | None, test_fraction: float) -> Split:
    """Train on everything before the cutoff, test on the rest; default: last fraction of time."""
    if ingest.TIMESTAMP not in frame:
        raise InputError("evaluation needs a timestamp column (--timestamp-col)")
    times = frame[ingest.TIMESTAMP]
    if cutoff is None:
        first, last = times.min(), times.max()
        cutoff = first + (last - first) * (1.0 - test_fraction)
    train = frame[times < cutoff]
    test = frame[times >= cutoff]
    if train.empty or test.empty:
        raise InputError(f"cutoff {cutoff} leaves an empty train or test set")
    return Split(train.reset_index(drop=True), test.reset_index(drop=True), pd.Timestamp(cutoff))


@dataclass(frozen=True)
class CartCase:
    cart: list[int]
    hidden: int
    quantities: tuple[int, ...] = ()
    """Units of each cart item in the order (as the widget sends them); empty: 1 each."""
    customer: str = ""
    later: frozenset[int] = frozenset()
    """What the same customer bought in orders placed after this one, in the test window:
    what an upsell suggestion for this cart is scored against."""


@dataclass(frozen=True)
class HistoryCase:
    items: list[int]
    weights: list[float]
    targets: frozenset[int]
    new_targets: frozenset[int]
    customer: str = ""


@dataclass(frozen=True)
class Cases:
    items: np.ndarray
    cart: list[CartCase]
    history: list[HistoryCase]
    population: dict[str, int] = field(default_factory=dict)
    """How many cases there were before sampling: cart orders and customers."""


MAX_CART_CASES = 5_000
MAX_HISTORY_CASES = 5_000
"""Cases scored at most per task: a seeded sample beyond (the report gives both counts)."""


def _codes_in(values: pd.Series, index: pd.Index) -> np.ndarray:
    """Position of each row's id in ``index`` (-1: unknown), one lookup per distinct id."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        per_cat = index.get_indexer(values.cat.categories.astype(str))
        codes = values.cat.codes.to_numpy()
        return np.where(codes >= 0, per_cat[np.maximum(codes, 0)], -1)
    return np.asarray(index.get_indexer(pd.Index(values.astype(str))))


def _group_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes per row and the ids (str) they stand for, ids sorted."""
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64), np.asarray(uniques).astype(str)


def build_cases(
    split: Split,
    items: np.ndarray,
    half_life_days: float,
    seed: int = 0,
    max_cart: int = MAX_CART_CASES,
    max_history: int = MAX_HISTORY_CASES,
    with_histories: bool = True,
) -> Cases:
    """Test cases over the items the train split knows; unknown test items are not scored.

    Vectorised over integer codes, and capped: past ``max_cart`` orders or ``max_history``
    customers, a seeded sample is scored (``population`` keeps the full counts).
    """
    index = pd.Index(np.asarray(items).astype(str))
    rng = np.random.default_rng(seed)
    test = split.test
    # -- cart completion: test orders with two or more known items, one hidden.
    item = _codes_in(test[ingest.ITEM], index)
    order, _ = _group_codes(test[ingest.ORDER])
    quantity = (
        test[ingest.QUANTITY].to_numpy(dtype=np.float64)
        if ingest.QUANTITY in test
        else np.ones(len(test))
    )
    test_nanos = test[ingest.TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
    test_cust = test[ingest.CUSTOMER].astype(str).to_numpy()
    all_lines = pd.DataFrame({"o": order, "i": item, "q": quantity, "t": test_nanos})
    known_lines = all_lines[all_lines["i"] >= 0]
    # One line per (order, item): its units summed, as a cart holds them.
    lines = known_lines.groupby(["o", "i"], sort=True)["q"].sum().reset_index()
    sizes = lines.groupby("o", sort=True).size()
    eligible = sizes.index[sizes.to_numpy() >= 2].to_numpy()
    picked = eligible
    if eligible.size > max_cart:
        picked = np.sort(rng.choice(eligible, size=max_cart, replace=False))
    chosen = lines[lines["o"].isin(picked)]
    placed = all_lines.groupby("o")["t"].max()
    owner = pd.Series(test_cust).groupby(order).first()
    later_of = _later_purchases(test_cust, item, test_nanos)
    carts: list[CartCase] = []
    for o, group in chosen.groupby("o", sort=True):
        known = group["i"].tolist()
        units = [max(1, round(q)) for q in group["q"].tolist()]
        hidden = int(rng.integers(len(known)))
        buyer = str(owner.loc[o])
        carts.append(
            CartCase(
                known[:hidden] + known[hidden + 1 :],
                known[hidden],
                tuple(units[:hidden] + units[hidden + 1 :]),
                buyer,
                later_of(buyer, int(placed.loc[o])),
            )
        )
    if not with_histories:  # another hide-one seed: only the carts change
        return Cases(items, carts, [], {"cart": int(eligible.size)})
    # -- next purchases: customers on both sides, with known items bought after.
    train = split.train
    t_cust = test[ingest.CUSTOMER].astype(str).to_numpy()
    after = pd.DataFrame({"c": t_cust, "i": item})
    after = after[after["i"] >= 0].drop_duplicates()
    tr_cust = train[ingest.CUSTOMER]
    tr_ids = pd.Index(pd.unique(tr_cust.astype(str)))
    after = after[tr_ids.get_indexer(pd.Index(after["c"])) >= 0]
    customers = np.sort(after["c"].unique())
    population = {"cart": int(eligible.size), "history": int(customers.size)}
    if customers.size > max_history:
        customers = np.sort(rng.choice(customers, size=max_history, replace=False))
    wanted = pd.Index(customers)
    after = after[wanted.get_indexer(after["c"]) >= 0]
    targets_of = {c: frozenset(g["i"].tolist()) for c, g in after.groupby("c", sort=True)}
    rows = wanted.get_indexer(tr_cust.astype(str)) >= 0
    mine = train.loc[rows]
    nanos = mine[ingest.TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
    frame = pd.DataFrame(
        {
            "c": mine[ingest.CUSTOMER].astype(str).to_numpy(),
            "i": _codes_in(mine[ingest.ITEM], index),
            "t": nanos,
        }
    )
    latest = frame.groupby("c")["t"].transform("max").to_numpy()
    age_days = (latest - frame["t"].to_numpy()).astype(np.float64) / 86_400e9
    frame["w"] = 0.5 ** (age_days / half_life_days)
    summed = frame.groupby(["c", "i"], sort=True)["w"].sum().reset_index()
    histories: list[HistoryCase] = []
    for customer, group in summed.groupby("c", sort=True):
        targets = targets_of.get(str(customer))
        if not targets:
            continue
        bought = [int(i) for i in group["i"]]
        histories.append(
            HistoryCase(bought, group["w"].tolist(), targets, targets - set(bought), str(customer))
        )
    return Cases(items, carts, histories, population)


def _later_purchases(
    customers: np.ndarray, items: np.ndarray, nanos: np.ndarray
) -> Callable[[str, int], frozenset[int]]:
    """``later(customer, t)``: the known items that customer bought after time ``t``."""
    keep = items >= 0
    frame = pd.DataFrame({"c": customers[keep], "i": items[keep], "t": nanos[keep]})
    frame = frame.sort_values(["c", "t"], kind="stable")
    by_customer = {
        str(c): (g["t"].to_numpy(), g["i"].to_numpy()) for c, g in frame.groupby("c", sort=False)
    }

    def later(customer: str, t: int) -> frozenset[int]:
        found = by_customer.get(customer)
        if found is None:
            return frozenset()
        times, bought = found
        return frozenset(int(i) for i in bought[np.searchsorted(times, t, side="right") :])

    return later


# -- metrics ------------------------------------------------------------------------------


def cart_metrics(ranked: Sequence[Sequence[int]], cases: Sequence[CartCase]) -> dict[str, float]:
    """HR@k, nDCG@k and MRR@k of the hidden item, averaged over cases."""
    out: dict[str, float] = {}
    n = max(len(cases), 1)
    for k in KS:
        hr = ndcg = mrr = 0.0
        for top, case in zip(ranked, cases, strict=True):
            top_k = list(top[:k])
            if case.hidden in top_k:
                pos = top_k.index(case.hidden)
                hr += 1.0
                ndcg += 1.0 / math.log2(pos + 2)
                mrr += 1.0 / (pos + 1)
        out[f"hr@{k}"], out[f"ndcg@{k}"], out[f"mrr@{k}"] = hr / n, ndcg / n, mrr / n
    return out


def set_metrics(
    ranked: Sequence[Sequence[int]], targets: Sequence[frozenset[int]]
) -> dict[str, float]:
    """recall@k (hits over min(k, |targets|), so a perfect list scores 1) and nDCG@k."""
    out: dict[str, float] = {}
    scored = [(top, t) for top, t in zip(ranked, targets, strict=True) if t]
    n = max(len(scored), 1)
    for k in KS:
        recall = ndcg = 0.0
        for top, t in scored:
            gains = [1.0 if i in t else 0.0 for i in top[:k]]
            ideal = min(k, len(t))
            recall += sum(gains) / ideal
            dcg = sum(g / math.log2(p + 2) for p, g in enumerate(gains))
            ndcg += dcg / sum(1.0 / math.log2(p + 2) for p in range(ideal))
        out[f"recall@{k}"], out[f"ndcg@{k}"] = recall / n, ndcg / n
    return out


# -- recommenders -------------------------------------------------------------------------

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
    """Padded neighbour lists (``training.neighbours.methods.Neighbours``) as a sparse matrix."""
    rows = np.repeat(np.arange(n_items), nb.indices.shape[1])
    cols = nb.indices.ravel()
    keep = cols >= 0
    return sp.csr_matrix(
        (nb.scores.ravel()[keep], (rows[keep], cols[keep])), shape=(n_items, n_items)
    )


def served_view(payload: ModelPayload) -> tuple[ModelView, list[ItemList]]:
    """The view and complement lists a worker would hold for this payload, read back
    through the same encoding the service reads, so the served ranking is what is scored."""
    view = ModelView.from_blobs(
        "candidate",
        lay.encode_json({**payload.meta, "format": lay.FORMAT_VERSION}),
        lay.encode_json(payload.item_ids),
        lay.encode_pairs(payload.popular_indices, payload.popular_scores, payload.popular_counts),
        None if payload.catalog is None else lay.encode_json(payload.catalog),
    )
    return view, decoded_lists(payload.neighbours, len(payload.item_ids))


def decoded_lists(nb: Neighbours, n_items: int) -> list[ItemList]:
    """Each item's list packed and decoded as the service reads it."""
    out = []
    for i in range(n_items):
        indices, scores = nb.row(i)
        out.append(ItemList.decode(lay.encode_pairs(indices, scores, nb.counts_row(i))))
    return out


def with_stored_histories(payload: ModelPayload, train: pd.DataFrame, limit: int) -> ModelPayload:
    """The payload with the histories the trainer would store for ``train``'s customers
    (``training.stages.histories``), so next purchases are ranked from what the e-mail path
    reads, not from the full history."""
    if payload.histories or limit <= 0:
        return payload
    return replace(payload, histories=recent_items(train, limit))


def served_from_payload(
    payload: ModelPayload, name: str = SERVED, settings: Settings | None = None
) -> Recommender:
    """The service's own answers, from a payload packed exactly as it would be published.

    The lists are encoded with the layout's packing and read back through ``ModelView``
    and ``recsvc.answers.recommend``, the functions behind the cart and history endpoints, so a
    change to how the service ranks (rules, weights, repurchase) is what gets measured.
    """
    settings = settings or Settings()
    ids = payload.item_ids
    view, lists = served_view(payload)
    stats = {"answers": 0, "filled": 0}

    def count(ranking: Ranking) -> list[int]:
        stats["answers"] += 1
        stats["filled"] += any(s.source == SOURCE_POPULAR for s in ranking.suggestions[:K_MAIN])
        return [view.index[s.item_id] for s in ranking.suggestions]

    def cart(items: list[int]) -> list[int]:
        lines = [(ids[i], 1) for i in items]
        answer = rec.rank_cart(view, settings, lines, [lists[i] for i in items], TOP)
        return count(answer.cross_sell)

    def cart_case(case: CartCase) -> list[int]:
        units = case.quantities or (1,) * len(case.cart)
        lines = [(ids[i], q) for i, q in zip(case.cart, units, strict=True)]
        answer = rec.rank_cart(view, settings, lines, [lists[i] for i in case.cart], TOP)
        return count(answer.cross_sell)

    def history(case: HistoryCase, exclude: bool) -> list[int]:
        stored = payload.histories.get(case.customer) if payload.histories else None
        if stored is not None:
            # As the e-mail path serves it: the history the trainer stores (its heaviest
            # items, their days and orders), weighted with the service's half-life.
            history = StoredHistory(list(stored[0]), list(stored[1]), list(stored[2]))
            seeds = [lists[view.index[i]] for i in history.item_ids]
            return count(rec.rank_stored(view, settings, history, seeds, TOP, exclude))
        weights = {ids[i]: w for i, w in zip(case.items, case.weights, strict=True)}
        seeds = [lists[i] for i in case.items]
        return count(rec.rank_history(view, settings, weights, seeds, TOP, exclude))

    return Recommender(name, cart, history, stats, cart_case=cart_case)


@dataclass
class MethodResult:
    name: str
    metrics: dict[str, dict[str, float]]
    coverage: dict[str, float]
    fallback_share: float = 0.0
    """Share of answers whose top 10 needed popular items to fill it (served only)."""
    per_case: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    """Headline measures case by case, by ``task/metric`` (``cart/hr@10``: 1 where the
    hidden item is in the top 10; ``next/recall@10``, ``next_new/recall@10``), in the
    cases' order: what a paired comparison of two methods on the same cases resamples."""
    params: dict[str, Any] = field(default_factory=dict)
    """The settings the method ran with (a tuned baseline's, per task)."""


def evaluate(
    rec: Recommender,
    cases: Cases,
    with_history_new: bool = True,
    tasks: frozenset[str] | None = None,
) -> MethodResult:
    """Scores ``rec`` on the tasks it answers (and ``tasks``, when given, of those)."""
    todo = rec.tasks if tasks is None else rec.tasks & tasks
    if not with_history_new:
        todo = todo - {NEXT_NEW}
    cart_lists = next_lists = new_lists = None
    if rec.many is not None:
        batch = rec.many
        if CART in todo:
            cart_lists = batch([(c.cart, None, c.cart) for c in cases.cart])
        if NEXT in todo:
            next_lists = batch([(h.items, h.weights, []) for h in cases.history])
        if NEXT_NEW in todo:
            new_lists = batch([(h.items, h.weights, h.items) for h in cases.history])
    else:
        if CART in todo:
            whole = rec.cart_case
            cart_lists = [whole(c) if whole else rec.cart(c.cart) for c in cases.cart]
        if NEXT in todo:
            next_lists = [rec.history(h, False) for h in cases.history]
        if NEXT_NEW in todo:
            new_lists = [rec.history(h, True) for h in cases.history]
    return _result(rec, cases, cart_lists, next_lists, new_lists)


def _result(
    rec: Recommender,
    cases: Cases,
    cart_lists: list[list[int]] | None,
    next_lists: list[list[int]] | None,
    new_lists: list[list[int]] | None,
) -> MethodResult:
    metrics: dict[str, dict[str, float]] = {}
    per_case: dict[str, np.ndarray] = {}
    coverage: dict[str, float] = {}
    n = max(len(cases.items), 1)
    if cart_lists is not None:
        metrics[CART] = cart_metrics(cart_lists, cases.cart)
        coverage[CART] = len({i for top in cart_lists for i in top[:K_MAIN]}) / n
        per_case[f"{CART}/hr@10"] = np.array(
            [float(c.hidden in top[:K_MAIN]) for top, c in zip(cart_lists, cases.cart, strict=True)]
        )
    if next_lists is not None:
        metrics[NEXT] = set_metrics(next_lists, [h.targets for h in cases.history])
        coverage[NEXT] = len({i for top in next_lists for i in top[:K_MAIN]}) / n
        per_case[f"{NEXT}/recall@10"] = _recalls(next_lists, [h.targets for h in cases.history])
    if new_lists is not None:
        metrics[NEXT_NEW] = set_metrics(new_lists, [h.new_targets for h in cases.history])
        per_case[f"{NEXT_NEW}/recall@10"] = _recalls(
            new_lists, [h.new_targets for h in cases.history]
        )
    answers = rec.stats.get("answers", 0)
    filled = rec.stats.get("filled", 0) / answers if answers else 0.0
    return MethodResult(rec.name, metrics, coverage, filled, per_case, dict(rec.params))


def _recalls(ranked: Sequence[Sequence[int]], targets: Sequence[frozenset[int]]) -> np.ndarray:
    """recall@10 case by case, over the cases with targets (as ``set_metrics``)."""
    return np.array(
        [
            sum(1.0 for i in top[:K_MAIN] if i in t) / min(K_MAIN, len(t))
            for top, t in zip(ranked, targets, strict=True)
            if t
        ]
    )


BASELINE_LISTS = 200
"""Positive weights per item a list baseline keeps (negative: half as many, for EASE)."""


def headline(result: MethodResult) -> dict[str, float]:
    """The numbers the gate and the table lead with."""
    m = result.metrics
    out: dict[str, float] = {}
    if CART in m:
        out["cart_hr@10"] = m[CART]["hr@10"]
        out["cart_ndcg@10"] = m[CART]["ndcg@10"]
    if NEXT in m:
        out["next_recall@10"] = m[NEXT]["recall@10"]
        out["next_ndcg@10"] = m[NEXT]["ndcg@10"]
    if NEXT_NEW in m:
        out["next_new_recall@10"] = m[NEXT_NEW]["recall@10"]
    return out


def table(results: Sequence[MethodResult]) -> str:
    cols = ["cart_hr@10", "cart_ndcg@10", "next_recall@10", "next_ndcg@10", "next_new_recall@10"]
    head = f"{'method':32s} " + " ".join(f"{c:>18s}" for c in cols) + f" {'coverage':>9s}"
    lines = [head, "-" * len(head)]
    for r in results:
        h = headline(r)
        cells = " ".join(f"{h[c]:18.4f}" if c in h else f"{'-':>18s}" for c in cols)
        cover = r.coverage.get(CART, r.coverage.get(NEXT, float("nan")))
        lines.append(f"{r.name:32s} {cells} {cover:9.3f}")
    return "\n".join(lines)


def summary(results: Sequence[MethodResult]) -> dict[str, Any]:
    return {
        r.name: {"metrics": r.metrics, "coverage": r.coverage, "headline": headline(r)}
        for r in results
    }
