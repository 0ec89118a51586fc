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

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from training.evaluation import cases as holdout
from training.evaluation import evaluate as ev
from training.evaluation.baselines.als import build_als
from training.evaluation.baselines.base import ALL_TASKS, MAIN, NEXT_TASKS, Data, Family, grid
from training.evaluation.baselines.cooccurrence import build_cooccurrence
from training.evaluation.baselines.ease import build_ease
from training.evaluation.baselines.knn import build_knn
from training.evaluation.baselines.tifu import TIFU_BYTES_PER_LINE, build_tifu
from training.neighbours.cooccurrence import NORMALISATIONS
from training.stages import matrices


def families(seed: int = 0) -> tuple[Family, ...]:
    """The tuned baselines and their grids (the first setting: the untuned default)."""
    return (
        Family(
            "co-occurrence", ALL_TASKS,
            grid({"normalisation": "cosine"}, seed, normalisation=NORMALISATIONS),
            build_cooccurrence,
            "co-occurrence (cosine)",
        ),
        Family(
            "item-kNN BM25", ALL_TASKS,
            grid({"K": 50, "K1": 1.2}, seed, K=(10, 20, 50, 100, 200, 500), K1=(1.2, 100.0)),
            build_knn, "item-kNN BM25 (implicit)",
        ),
        Family(
            "ALS, cosine", ALL_TASKS,
            grid(
                {"factors": 100, "regularization": 0.01, "alpha": 1.0, "weighting": "counts"},
                seed, factors=(32, 64, 128, 256), regularization=(0.01, 0.1, 1.0),
                alpha=(1.0, 5.0, 20.0), weighting=matrices.WEIGHTINGS,
            ),
            build_als, "ALS default, cosine",
        ),
        Family(
            "EASE", ALL_TASKS,
            grid(
                {"lambda": 50.0, "recency_half_life_days": 0.0}, seed,
                **{"lambda": (10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)},
                recency_half_life_days=(0.0, 60.0, 120.0, 240.0),
            ),
            build_ease, "EASE (lambda 50)",
        ),
        Family(
            "TIFU-KNN", NEXT_TASKS,
            grid(
                {"group_size": 7, "r_basket": 0.9, "r_group": 0.7, "k": 300, "alpha": 0.9},
                seed, group_size=(3, 7, 20), r_basket=(0.9, 1.0), r_group=(0.6, 0.8, 0.9, 1.0),
                k=(50, 300, 1000), alpha=(0.5, 0.7, 0.9, 1.0),
            ),
            build_tifu, "TIFU-KNN (the paper's setting)", TIFU_BYTES_PER_LINE,
        ),
    )  # fmt: skip


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
            merged = result if merged is None else merge_results(merged, result)
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


def merge_results(a: ev.MethodResult, b: ev.MethodResult) -> ev.MethodResult:
    return ev.MethodResult(
        a.name,
        {**a.metrics, **b.metrics},
        {**a.coverage, **b.coverage},
        a.fallback_share,
        {**a.per_case, **b.per_case},
    )
