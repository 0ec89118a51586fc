"""Assess a configuration: tune on a validation window, fit before the cutoff, score after.

Both ``python -m training evaluate`` and the quality gate of ``train`` run this, so the
numbers an operator reads in the report are the numbers the gate decides on.
"""

from __future__ import annotations

import io
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from training import evaluate as ev
from training import ingest, matrices, report, tuning
from training.errors import InputError
from training.pipeline import Stages, TrainConfig, fit
from training.publish import ModelPayload

POPULARITY = "popularity"

Fit = Callable[..., ModelPayload]
"""An engine's ``fit(frame, config, stages, for_serving=...)`` on a pandas frame."""


@dataclass
class Assessment:
    config: TrainConfig
    """The configuration to publish: the given one, or the tuned one."""
    results: list[ev.MethodResult]
    tuning: tuning.Tuning | None
    split: dict[str, Any]
    seconds: dict[str, float]
    window: tuple[ev.Split, ev.Cases] | None = field(default=None, repr=False)
    """The split and the cases scored, for ``rescore`` (``release`` frees them)."""
    fit: Fit = field(default=fit, repr=False)
    """The engine that fit the model scored, which ``rescore`` fits with too."""

    def rescore(self, config: TrainConfig, stages: Stages) -> ev.MethodResult:
        """Another recipe fit on the same training window and scored, as served, on the
        same cases: the live model's recipe, for the gate to compare like with like."""
        if self.window is None:
            raise ValueError("this assessment's window was released")
        split, cases = self.window
        quiet = Stages(io.StringIO(), stages.budget)
        payload = self.fit(split.train, config, quiet, for_serving=False)
        return ev.evaluate(ev.served_from_payload(payload), cases, with_history_new=False)

    def release(self) -> None:
        self.window = None

    def served(self) -> ev.MethodResult:
        return next(r for r in self.results if r.name == ev.SERVED)

    def popularity(self) -> ev.MethodResult:
        return next(r for r in self.results if r.name == POPULARITY)

    def report(self, gate: dict[str, Any] | None = None) -> dict[str, Any]:
        return report.build(
            split=self.split,
            results=self.results,
            params=self.config.params(),
            tuning=self.tuning.as_dict() if self.tuning else None,
            seconds=self.seconds,
            gate=gate,
        )

    def evaluation_meta(self) -> dict[str, Any]:
        """What a published version keeps of its assessment, for the next run's gate."""
        return {
            "cutoff": self.split["cutoff"],
            "served": ev.headline(self.served()),
            "popularity": ev.headline(self.popularity()),
            "comparison": report.comparison(self.results),
            "cases": {"cart": self.split["cart_cases"], "history": self.split["history_cases"]},
        }


@dataclass(frozen=True)
class EvalOptions:
    cutoff: pd.Timestamp | None = None
    """Test on purchases from here on; None: the last ``test_fraction`` of the time span."""
    test_fraction: float = 0.1
    tune_budget: float = 0.0
    """Seconds for the parameter search; 0 keeps the given parameters."""
    seed: int = 0


def assess(
    frame: pd.DataFrame,
    config: TrainConfig,
    stages: Stages,
    options: EvalOptions | None = None,
    with_baselines: bool = True,
    fit: Fit = fit,
) -> Assessment:
    """``fit``: the engine's, which fits the candidate scored (the baselines are the
    evaluation's own, whatever the engine)."""
    options = options or EvalOptions()
    cutoff, test_fraction = options.cutoff, options.test_fraction
    tune_budget, seed = options.tune_budget, options.seed
    split = ev.temporal_split(frame, cutoff, test_fraction)
    tuned: tuning.Tuning | None = None
    if tune_budget > 0:
        with stages.stage("tune"):
            tuned = tuning.tune(
                split.train,
                config,
                tune_budget,
                test_fraction,
                seed=seed,
                on_trial=lambda t: stages.say(
                    f"  trial {t.number}: score {t.score:.4f} in {t.seconds:.1f}s"
                ),
                budget=stages.budget,
            )
        stages.say(
            f"  tuned on {tuned.sample['lines']:,} of {tuned.sample['of']:,} lines, "
            f"{len(tuned.trials)} trials"
        )
        if tuned.best is not None:
            config = tuning.with_params(config, tuned.best.params)
    with stages.stage("evaluate"):
        quiet = Stages(io.StringIO(), stages.budget)
        payload = fit(split.train, config, quiet, for_serving=False)
        inter = matrices.build(split.train)
        cases = ev.build_cases(split, inter.items, half_life_days=30.0, seed=seed)
        if not cases.cart and not cases.history:
            raise InputError(
                f"nothing to evaluate on: no test order or customer after {split.cutoff} "
                "involves an item bought before it"
            )
        stages.say(
            f"  cases: {len(cases.cart):,} of {cases.population.get('cart', 0):,} cart orders, "
            f"{len(cases.history):,} of {cases.population.get('history', 0):,} customers"
        )
        pop = matrices.popularity(inter).astype(float)
        recommenders: Iterable[ev.Recommender] = (
            ev.baselines(inter, memory_bytes=stages.budget.available())
            if with_baselines
            else [ev.popularity_recommender(pop)]
        )
        results = []
        for rec in itertools.chain([ev.served_from_payload(payload)], recommenders):
            t0 = time.perf_counter()
            results.append(ev.evaluate(rec, cases))
            stages.say(f"  {rec.name}: {time.perf_counter() - t0:.1f}s")
    split_info = {
        "cutoff": split.cutoff.isoformat(),
        "train_rows": len(split.train),
        "test_rows": len(split.test),
        "train_first": _iso(split.train[ingest.TIMESTAMP].min()),
        "test_last": _iso(split.test[ingest.TIMESTAMP].max()),
        "items_ranked": int(inter.n_items),
        "cart_cases": len(cases.cart),
        "history_cases": len(cases.history),
        "cart_population": cases.population.get("cart", len(cases.cart)),
        "history_population": cases.population.get("history", len(cases.history)),
    }
    return Assessment(config, results, tuned, split_info, dict(stages.seconds), (split, cases), fit)


def _iso(value: Any) -> str:
    return pd.Timestamp(value).isoformat()
