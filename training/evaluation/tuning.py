"""Hyperparameter search on a validation window carved from the training period.

The training split is split again in time: trials train before the validation cutoff and
are scored on the window after it, so the test window of the evaluation (and of the gate)
is never seen while choosing parameters. The search is random over a small grid, starts
from the given configuration, and stops starting trials when the time budget would run
out.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from training import memory
from training.engines.local import Stages, TrainConfig, fit
from training.evaluation import cases as holdout
from training.evaluation import evaluate as ev
from training.neighbours.registry import METHODS
from training.publish import ModelPayload
from training.stages import matrices
from training.stages.histories import Histories, recent_items
from training.stages.ingest import CUSTOMER

SPACE: dict[str, tuple[Any, ...]] = {
    "weighting": matrices.WEIGHTINGS,
    "factors": (32, 64, 128),
    "regularization": (0.01, 0.05, 0.1, 0.5),
    "alpha": (0.5, 1.0, 2.0, 5.0),
    "iterations": (10, 15, 25),
    "ease_lambda": (10.0, 20.0, 50.0, 100.0, 200.0),
    "recency_half_life_days": (0.0, 60.0, 90.0, 120.0, 240.0),
    "als_weight": (0.0, 0.1, 0.3),
    "negatives": (0, 50, 100),
    "repurchase_bonus": (2.0, 5.0, 20.0),
    "repurchase_scale": (1.0, 3.0, 10.0, 30.0),
}
"""Every tuned parameter and its candidate values."""

_ALS_FIELDS = ("factors", "regularization", "alpha", "iterations")


def space_for(method: str) -> dict[str, tuple[Any, ...]]:
    """``SPACE`` for one neighbour method: the parameters every recipe reads, and of the
    methods' own (``Method.params``) only those this method reads."""
    own = {p for m in METHODS.values() for p in m.params}
    reads = set(METHODS[method].params) if method in METHODS else own
    return {k: v for k, v in SPACE.items() if k not in own or k in reads}


def objective(headline: Mapping[str, float]) -> float:
    """One number to compare trials: the mean of the three tasks' main measures.

    Cart completion, next purchases and new items only weigh alike, so a trial cannot win
    by repurchase alone.
    """
    keys = ("cart_hr@10", "next_recall@10", "next_new_recall@10")
    return sum(headline[k] for k in keys) / len(keys)


def params_of(config: TrainConfig) -> dict[str, Any]:
    als = config.als
    return {
        "weighting": config.weighting,
        "factors": als.factors,
        "regularization": als.regularization,
        "alpha": als.alpha,
        "iterations": als.iterations,
        "ease_lambda": config.ease_lambda,
        "recency_half_life_days": config.recency_half_life_days,
        "als_weight": config.als_weight,
        "negatives": config.negatives,
        "repurchase_bonus": config.repurchase_bonus,
        "repurchase_scale": config.repurchase_scale,
    }


def with_params(config: TrainConfig, params: Mapping[str, Any]) -> TrainConfig:
    als = replace(config.als, **{k: params[k] for k in _ALS_FIELDS if k in params})
    rest = {k: v for k, v in params.items() if k not in _ALS_FIELDS and k in SPACE}
    return replace(config, als=als, **rest)


@dataclass(frozen=True)
class Trial:
    number: int
    params: dict[str, Any]
    headline: dict[str, float]
    score: float
    seconds: float


@dataclass
class Tuning:
    validation_cutoff: str
    budget_seconds: float
    trials: list[Trial] = field(default_factory=list)
    best: Trial | None = None
    """The trial whose parameters are used: the first (given) one unless beaten clearly."""
    min_gain: float = 0.0
    seconds: float = 0.0
    skipped: dict[str, Any] = field(default_factory=dict)
    """The trial not started because its estimate would overrun the budget."""
    sample: dict[str, int] = field(default_factory=dict)
    """Purchase lines the trials trained on, and of how many (a sample on large data)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "validation_cutoff": self.validation_cutoff,
            "budget_seconds": self.budget_seconds,
            "seconds": round(self.seconds, 2),
            "objective": "mean of cart hr@10, next recall@10, next (new items) recall@10",
            "trials": [t.__dict__ for t in self.trials],
            "best": None if self.best is None else self.best.number,
            "min_gain": self.min_gain,
            "sample": self.sample,
            "skipped": self.skipped,
        }


def candidates(
    base: Mapping[str, Any], rng: random.Random, space: Mapping[str, tuple[Any, ...]] = SPACE
) -> Callable[[], dict[str, Any]]:
    """Yields parameter sets: first the given ones, then random draws (over ``space``, the
    rest as given) never seen before."""
    seen: set[tuple[Any, ...]] = set()
    first = [dict(base)]

    def draw() -> dict[str, Any]:
        if first:
            params = first.pop()
        else:
            for _ in range(1000):
                params = {k: rng.choice(space[k]) if k in space else v for k, v in base.items()}
                if tuple(params.values()) not in seen:
                    break
        seen.add(tuple(params.values()))
        return params

    return draw


def cost_units(params: Mapping[str, Any]) -> float:
    """A trial's relative cost: ALS grows with factors x iterations, the rest is fixed
    (about half of a default trial, measured on Complete Journey and synthetic data)."""
    als = float(params.get("factors", 64)) * float(params.get("iterations", 15))
    return 1.0 + als / (64 * 15)


TUNE_MAX_LINES = 400_000
"""Past this many purchase lines, trials run on a seeded sample of whole customers."""


def subsample(frame: pd.DataFrame, max_lines: int, seed: int) -> pd.DataFrame:
    """Whole customers, drawn at random, up to ``max_lines`` purchase lines in all."""
    if len(frame) <= max_lines:
        return frame
    codes, _ = pd.factorize(frame[CUSTOMER])
    lines = np.bincount(codes)
    order = np.random.default_rng(seed).permutation(lines.size)
    keep = np.zeros(lines.size, bool)
    keep[order[np.cumsum(lines[order]) <= max_lines]] = True
    return frame.loc[keep[codes]].reset_index(drop=True)


@dataclass(frozen=True)
class Validation:
    """The validation window: the training period's last part, scored while choosing
    (the served model's parameters and every baseline's), never the reported window."""

    split: holdout.Split
    inter: matrices.Interactions
    cases: holdout.Cases
    sample: dict[str, int]
    _stored: dict[int, Histories] = field(default_factory=dict, repr=False, compare=False)

    def stored(self, limit: int) -> Histories:
        """The histories the trainer would store for this window's customers (the same for
        every recipe, so built once per window)."""
        if limit not in self._stored:
            self._stored[limit] = recent_items(self.split.train, limit)
        return self._stored[limit]

    def as_stored(self, payload: ModelPayload, limit: int) -> ModelPayload:
        """``payload`` with this window's stored histories: next purchases ranked as the
        e-mail path ranks them."""
        return replace(payload, histories=self.stored(limit)) if limit > 0 else payload


def validation_window(
    train: pd.DataFrame,
    validation_fraction: float = 0.1,
    seed: int = 0,
    max_lines: int = TUNE_MAX_LINES,
) -> Validation:
    sample = subsample(train, max_lines, seed)
    split = holdout.temporal_split(sample, None, validation_fraction)
    inter = matrices.build(split.train)
    cases = holdout.build_cases(split, inter.items, half_life_days=30.0, seed=seed)
    return Validation(split, inter, cases, {"lines": len(sample), "of": len(train)})


def _serving_sweep(
    payload: ModelPayload, params: Mapping[str, Any], first: Trial, cases: holdout.Cases
) -> list[Trial]:
    """The first trial's model served with each other repurchase scale: a serving weight
    only, so no refit; only next purchases (with repurchases) can change."""
    serving = payload.meta["serving"]
    strong = serving["repurchase_weight"] / max(float(params["repurchase_scale"]), 1e-12)
    out = []
    for scale in SPACE["repurchase_scale"]:
        if scale == params["repurchase_scale"]:
            continue
        t0 = time.perf_counter()
        meta = {**payload.meta, "serving": {**serving, "repurchase_weight": strong * scale}}
        served = ev.evaluate(
            ev.served_from_payload(replace(payload, meta=meta)), cases, tasks=frozenset({ev.NEXT})
        )
        headline = {**first.headline, **ev.headline(served)}
        trial_params = {**params, "repurchase_scale": scale}
        seconds = round(time.perf_counter() - t0, 2)
        out.append(Trial(first.number, trial_params, headline, objective(headline), seconds))
    return out


def tune(
    train: pd.DataFrame,
    config: TrainConfig,
    budget_seconds: float,
    validation_fraction: float = 0.1,
    max_trials: int = 100,
    min_gain: float = 0.02,
    seed: int = 0,
    on_trial: Callable[[Trial], None] | None = None,
    budget: memory.Budget | None = None,
    max_lines: int = TUNE_MAX_LINES,
    window: Validation | None = None,
) -> Tuning:
    """Searches parameters on ``train`` alone; returns every trial and the one to use.

    A trial replaces the given parameters only when it scores ``min_gain`` (relative)
    above them: one validation window is a noisy judge, and on Online Retail the
    narrowest winners of a random search did worse on the test window than the defaults.
    """
    start = time.perf_counter()
    window = window or validation_window(train, validation_fraction, seed, max_lines)
    split, cases = window.split, window.cases
    result = Tuning(split.cutoff.isoformat(), budget_seconds, min_gain=min_gain)
    result.sample = dict(window.sample)
    draw = candidates(params_of(config), random.Random(seed), space_for(config.method))
    quiet = Stages(io.StringIO(), budget)
    per_unit = 0.0
    number = 0
    swept: dict[str, Any] = {}
    while number < max_trials:
        elapsed = time.perf_counter() - start
        params = {**draw(), **swept}
        # Always one trial (the given parameters), then only what fits in the budget:
        # a trial is estimated from the costliest trial so far, scaled by its ALS work.
        if number and elapsed + per_unit * cost_units(params) > budget_seconds:
            result.skipped = {
                "params": params,
                "estimate_s": round(per_unit * cost_units(params), 3),
            }
            break
        t0 = time.perf_counter()
        payload = fit(split.train, with_params(config, params), quiet, for_serving=False)
        payload = window.as_stored(payload, config.history_items)
        served = ev.evaluate(ev.served_from_payload(payload), cases)
        headline = ev.headline(served)
        seconds = time.perf_counter() - t0
        per_unit = max(per_unit, seconds / cost_units(params))
        trial = Trial(number, params, headline, objective(headline), round(seconds, 2))
        number += 1
        for t in [trial, *([] if number > 1 else _serving_sweep(payload, params, trial, cases))]:
            if t is not trial:
                t = replace(t, number=number)
                number += 1
            result.trials.append(t)
            if result.best is None or t.score > result.best.score * (1.0 + min_gain):
                result.best = t
            if on_trial:
                on_trial(t)
        if number > 1 and not swept and result.best is not None:
            # Later trials keep the repurchase scale the sweep chose.
            swept = {"repurchase_scale": result.best.params["repurchase_scale"]}
    result.seconds = time.perf_counter() - start
    return result
