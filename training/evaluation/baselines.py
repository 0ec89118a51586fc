"""The baselines, tuned like the served model: on the same validation window, with the
same time budget.

A baseline is a ``Family``: a name, the tasks it answers, a grid of settings (its first
entry is the fixed setting the evaluation used before baselines were tuned) and a builder.
``tune`` runs each family's grid on the validation window (the training period's last
part, the window the served model's parameters are searched on), for at most the budget
the served model's search had, and keeps the best setting per task: a baseline may use one
setting for carts and another for next purchases, which only makes it stronger.
``fit_tuned`` then builds each family on the whole training period with its chosen
settings, for the reported window, which is scored once.

The families:
- co-occurrence, with its normalisation (cosine, Jaccard, conditional P(j|i), raw counts);
- item-kNN, implicit's BM25 item-item model (K, K1);
- ALS, implicit's (factors, regularization, alpha, confidence weighting), cosine of factors;
- EASE (lambda, order recency);
- TIFU-KNN (Hu et al., SIGIR 2020), for next purchases: a customer's baskets as a vector of
  repeat purchases decayed within and across groups of baskets, blended with the mean
  vector of the most similar customers.

Popularity and past purchases have nothing to tune; TIFU-KNN with alpha 1 is past
purchases with TIFU's decay.
"""

from __future__ import annotations

import itertools
import random
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from implicit.nearest_neighbours import BM25Recommender
from implicit.utils import ParameterWarning
from threadpoolctl import threadpool_limits

from training.evaluation import cases as holdout
from training.evaluation import evaluate as ev
from training.evaluation import recommenders as recs
from training.neighbours.base import NeighbourInputs
from training.neighbours.cooccurrence import NORMALISATIONS, cosine_lists
from training.neighbours.ease import ease
from training.stages import matrices
from training.stages.als import AlsParams, train_als
from training.stages.ingest import CUSTOMER, ITEM, ORDER, TIMESTAMP

LISTS = ev.BASELINE_LISTS
NEXT_TASKS = frozenset({ev.NEXT, ev.NEXT_NEW})
ALL_TASKS = frozenset({ev.CART, ev.NEXT, ev.NEXT_NEW})
MAIN = {ev.CART: "hr@10", ev.NEXT: "recall@10", ev.NEXT_NEW: "recall@10"}
"""The measure each task's setting is chosen by."""


@dataclass(frozen=True)
class Data:
    """What a baseline is built from: one training period's lines and matrices."""

    inter: matrices.Interactions
    frame: pd.DataFrame
    memory_bytes: int = 2 << 30


Builder = Callable[[Data, Mapping[str, Any]], recs.Recommender]


@dataclass(frozen=True)
class Family:
    name: str
    tasks: frozenset[str]
    grid: tuple[dict[str, Any], ...]
    """Settings to try, the fixed (untuned) one first."""
    build: Builder
    fixed_name: str
    """Its name at the fixed setting (a run that tunes nothing)."""
    bytes_per_line: int = 0
    """Memory a build needs per purchase line beyond the matrices (0: bounded by them)."""

    def fits(self, lines: int, memory_bytes: int) -> bool:
        """Whether a build on ``lines`` purchase lines fits what the budget leaves (else the
        family is left out, and the run says so, rather than risk the kernel's kill)."""
        return lines * self.bytes_per_line <= memory_bytes

    def label(self, params: Mapping[str, Any]) -> str:
        return label(params)


def label(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {_short(v)}" for k, v in params.items())


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _grid(
    first: dict[str, Any], seed: int = 0, **axes: Sequence[Any]
) -> tuple[dict[str, Any], ...]:
    """``first``, then every other combination of ``axes`` in a seeded random order (so a
    budget that stops early has sampled the whole space, not one corner)."""
    keys = list(axes)
    rest = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes.values())]
    rest = [p for p in rest if p != first]
    random.Random(seed).shuffle(rest)
    return (first, *rest)


# -- co-occurrence --------------------------------------------------------------------------


def _cooccurrence(data: Data, p: Mapping[str, Any]) -> recs.Recommender:
    inter = data.inter
    budget = NeighbourInputs(inter.order_item, memory_bytes=data.memory_bytes)
    nb = cosine_lists(inter.order_item, LISTS, budget.max_entries, str(p["normalisation"]))
    return recs.lists_recommender(
        "co-occurrence", recs.neighbours_matrix(nb, inter.n_items), _pop(inter)
    )


# -- item-kNN -------------------------------------------------------------------------------


def _knn(data: Data, p: Mapping[str, Any]) -> recs.Recommender:
    with threadpool_limits(1, "blas"), warnings.catch_warnings():
        # implicit converts its own BM25 output (COO) and warns about it; not our input.
        warnings.simplefilter("ignore", ParameterWarning)
        knn = BM25Recommender(K=int(p["K"]), K1=float(p["K1"]), B=0.75)
        knn.fit(data.inter.customer_item, show_progress=False)
    return recs.lists_recommender("item-kNN BM25", knn.similarity, _pop(data.inter))


# -- ALS ------------------------------------------------------------------------------------


def _als(data: Data, p: Mapping[str, Any]) -> recs.Recommender:
    confidence = matrices.weight(data.inter.customer_item, p["weighting"])
    factors = train_als(
        confidence,
        AlsParams(
            factors=int(p["factors"]),
            regularization=float(p["regularization"]),
            alpha=float(p["alpha"]),
            iterations=15,
        ),
    )
    return recs.factors_recommender("ALS, cosine", factors, _pop(data.inter))


# -- EASE -----------------------------------------------------------------------------------


def _ease(data: Data, p: Mapping[str, Any]) -> recs.Recommender:
    inter = data.inter
    inputs = NeighbourInputs(
        inter.order_item,
        ease_lambda=float(p["lambda"]),
        order_weights=matrices.order_weights(inter, float(p["recency_half_life_days"])),
        negatives=LISTS // 2,
        memory_bytes=data.memory_bytes,
    )
    lists = ease(inputs, LISTS)
    return recs.lists_recommender("EASE", recs.neighbours_matrix(lists, inter.n_items), _pop(inter))


# -- TIFU-KNN -------------------------------------------------------------------------------


def tifu_vectors(
    frame: pd.DataFrame, items: np.ndarray, group_size: int, r_basket: float, r_group: float
) -> tuple[np.ndarray, sp.csr_matrix]:
    """Each customer's TIFU vector (customers sorted, rows of a customers x items matrix).

    A customer's baskets, oldest first, are cut into groups of ``group_size`` counted from
    the newest (the oldest group may be short). Within a group, the basket j places from
    the group's newest weighs ``r_basket**j``; the group g places from the newest weighs
    ``r_group**g``; each group is averaged over its baskets and the groups over their
    number (Hu et al., "Modeling Personalized Item Frequency Information for
    Next-basket Recommendation", SIGIR 2020, eq. 2-4)."""
    index = pd.Index(np.asarray(items).astype(str))
    item = index.get_indexer(frame[ITEM].astype(str))
    cust, customers = matrices.codes_of(frame[CUSTOMER])
    nanos = frame[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
    lines = pd.DataFrame(
        {"c": cust, "o": matrices.codes_of(frame[ORDER], sort=False)[0], "i": item, "t": nanos}
    )
    lines = lines[lines["i"] >= 0]
    baskets = lines.groupby(["c", "o"], sort=False)["t"].max().reset_index()
    baskets = baskets.sort_values(["c", "t", "o"], kind="stable")
    n_of = baskets.groupby("c")["o"].transform("size").to_numpy()
    rank = baskets.groupby("c").cumcount().to_numpy()
    back = n_of - 1 - rank  # 0: the newest basket
    group, within = back // group_size, back % group_size
    groups = (n_of + group_size - 1) // group_size
    in_group = np.where(group == groups - 1, n_of - (groups - 1) * group_size, group_size)
    weight = r_basket**within / in_group * r_group**group / groups
    baskets = baskets.assign(w=weight)
    per_line = lines.drop_duplicates(["o", "i"]).merge(baskets[["o", "w"]], on="o")
    vectors = sp.csr_matrix(
        (per_line["w"].to_numpy(), (per_line["c"].to_numpy(), per_line["i"].to_numpy())),
        shape=(customers.size, len(items)),
    )
    vectors.sum_duplicates()
    return customers, vectors


def tifu_recommender(
    customers: np.ndarray, vectors: sp.csr_matrix, pop: np.ndarray, k: int, alpha: float
) -> recs.Recommender:
    """alpha x the customer's vector + (1 - alpha) x the mean of its ``k`` nearest customers'
    (Euclidean, as in the paper); ranked over the items either part holds, then popular."""
    popular = recs.Popular(pop)
    row_of = {str(c): n for n, c in enumerate(customers)}
    sq = np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel()
    vt = vectors.T.tocsr()
    kk = min(k, max(vectors.shape[0] - 1, 0))

    def history(case: holdout.HistoryCase, exclude: bool) -> list[int]:
        row = row_of.get(case.customer)
        skip = case.items if exclude else []
        if row is None:
            return popular.fill([], skip)
        mine = vectors[row]
        dots = np.asarray((mine @ vt).todense()).ravel()
        dist = sq + sq[row] - 2.0 * dots
        dist[row] = np.inf
        blend = alpha * mine
        if kk > 0 and alpha < 1.0:
            near = np.argpartition(dist, kk - 1)[:kk]
            mean = sp.csr_matrix(np.full((1, kk), 1.0 / kk)) @ vectors[near]
            blend = blend + (1.0 - alpha) * mean
        # Sparse throughout: the items either part holds, never a catalog-sized row.
        blend = sp.csr_matrix(blend)
        blend.sum_duplicates()
        return popular.fill(recs.ranked(blend.indices, blend.data, skip), skip)

    return recs.Recommender(
        "TIFU-KNN", lambda items: popular.fill([], items), history, tasks=NEXT_TASKS
    )


TIFU_BYTES_PER_LINE = 400
"""The pandas frames ``tifu_vectors`` builds, per purchase line: 123 bytes at their peak
on Online Retail (tracemalloc), with room for wider id columns."""


def _tifu(data: Data, p: Mapping[str, Any]) -> recs.Recommender:
    customers, vectors = tifu_vectors(
        data.frame,
        data.inter.items,
        int(p["group_size"]),
        float(p["r_basket"]),
        float(p["r_group"]),
    )
    return tifu_recommender(customers, vectors, _pop(data.inter), int(p["k"]), float(p["alpha"]))


def _pop(inter: matrices.Interactions) -> np.ndarray:
    return matrices.popularity(inter).astype(np.float64)


def families(seed: int = 0) -> tuple[Family, ...]:
    """The tuned baselines and their grids (the first setting: the untuned default)."""
    return (
        Family(
            "co-occurrence", ALL_TASKS,
            _grid({"normalisation": "cosine"}, seed, normalisation=NORMALISATIONS), _cooccurrence,
            "co-occurrence (cosine)",
        ),
        Family(
            "item-kNN BM25", ALL_TASKS,
            _grid({"K": 50, "K1": 1.2}, seed, K=(10, 20, 50, 100, 200, 500), K1=(1.2, 100.0)),
            _knn, "item-kNN BM25 (implicit)",
        ),
        Family(
            "ALS, cosine", ALL_TASKS,
            _grid(
                {"factors": 100, "regularization": 0.01, "alpha": 1.0, "weighting": "counts"},
                seed, factors=(32, 64, 128, 256), regularization=(0.01, 0.1, 1.0),
                alpha=(1.0, 5.0, 20.0), weighting=matrices.WEIGHTINGS,
            ),
            _als, "ALS default, cosine",
        ),
        Family(
            "EASE", ALL_TASKS,
            _grid(
                {"lambda": 50.0, "recency_half_life_days": 0.0}, seed,
                **{"lambda": (10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)},
                recency_half_life_days=(0.0, 60.0, 120.0, 240.0),
            ),
            _ease, "EASE (lambda 50)",
        ),
        Family(
            "TIFU-KNN", NEXT_TASKS,
            _grid(
                {"group_size": 7, "r_basket": 0.9, "r_group": 0.7, "k": 300, "alpha": 0.9},
                seed, group_size=(3, 7, 20), r_basket=(0.9, 1.0), r_group=(0.6, 0.8, 0.9, 1.0),
                k=(50, 300, 1000), alpha=(0.5, 0.7, 0.9, 1.0),
            ),
            _tifu, "TIFU-KNN (the paper's setting)", TIFU_BYTES_PER_LINE,
        ),
    )  # fmt: skip


# -- tuning ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FamilyTrial:
    params: dict[str, Any]
    scores: dict[str, float]
    seconds: float


@dataclass
class Choice:
    family: str
    best: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per task: the setting chosen on the validation window."""
    trials: list[FamilyTrial] = field(default_factory=list)
    grid_size: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "best": self.best,
            "trials": [t.__dict__ for t in self.trials],
            "grid_size": self.grid_size,
            "seconds": round(self.seconds, 2),
        }


def tune(
    fams: Sequence[Family],
    data: Data,
    cases: holdout.Cases,
    budget_seconds: float,
    on_trial: Callable[[Family, FamilyTrial], None] | None = None,
) -> list[Choice]:
    """Each family's grid on the validation window, for at most ``budget_seconds`` each
    (the first setting always runs); the best setting per task by its main measure."""
    out = []
    for fam in fams:
        choice = Choice(fam.name, grid_size=len(fam.grid))
        start = time.perf_counter()
        slowest = 0.0
        for params in fam.grid:
            elapsed = time.perf_counter() - start
            if choice.trials and elapsed + slowest > budget_seconds:
                break
            t0 = time.perf_counter()
            result = ev.evaluate(fam.build(data, params), cases)
            scores = {t: result.metrics[t][MAIN[t]] for t in fam.tasks if t in result.metrics}
            seconds = time.perf_counter() - t0
            slowest = max(slowest, seconds)
            trial = FamilyTrial(dict(params), scores, round(seconds, 2))
            choice.trials.append(trial)
            if on_trial:
                on_trial(fam, trial)
        for task in sorted(fam.tasks):
            scored = [t for t in choice.trials if task in t.scores]
            if scored:
                choice.best[task] = max(scored, key=lambda t: t.scores[task]).params
        choice.seconds = time.perf_counter() - start
        out.append(choice)
    return out


def untuned(fams: Sequence[Family]) -> list[Choice]:
    """Every family at its first (fixed) setting: what a run without a budget compares to."""
    return [
        Choice(f.name, {t: dict(f.grid[0]) for t in f.tasks}, grid_size=len(f.grid)) for f in fams
    ]


def fit_tuned(
    fams: Sequence[Family],
    choices: Sequence[Choice],
    data: Data,
    cases: holdout.Cases,
    other_seeds: Sequence[holdout.Cases] = (),
) -> Iterator[tuple[ev.MethodResult, list[ev.MethodResult]]]:
    """Each family built on ``data`` with its chosen settings and scored on ``cases`` (and
    its cart setting on ``other_seeds``' carts): one build per distinct setting, each
    scored on the tasks that chose it."""
    by_name = {c.family: c for c in choices}
    for fam in fams:
        choice = by_name.get(fam.name)
        if choice is None or not choice.best:
            continue
        settings: list[tuple[dict[str, Any], set[str]]] = []
        for task, params in sorted(choice.best.items()):
            same = next((tasks for known, tasks in settings if known == params), None)
            if same is None:
                settings.append((params, {task}))
            else:
                same.add(task)
        merged: ev.MethodResult | None = None
        extra: list[ev.MethodResult] = []
        for params, tasks in settings:
            rec = fam.build(data, params)
            result = ev.evaluate(rec, cases, tasks=frozenset(tasks))
            merged = result if merged is None else _merge(merged, result)
            if ev.CART in tasks:
                extra = [ev.evaluate(rec, c, tasks=frozenset({ev.CART})) for c in other_seeds]
            del rec
        if merged is not None:
            tuned = any(p != fam.grid[0] for p, _ in settings)
            merged.name = f"{fam.name} (tuned)" if tuned or choice.trials else fam.fixed_name
            merged.params = {t: choice.best[t] for t in sorted(choice.best)}
            for r in extra:
                r.name = merged.name
            yield merged, extra


def _merge(a: ev.MethodResult, b: ev.MethodResult) -> ev.MethodResult:
    return ev.MethodResult(
        a.name,
        {**a.metrics, **b.metrics},
        {**a.coverage, **b.coverage},
        a.fallback_share,
        {**a.per_case, **b.per_case},
    )
