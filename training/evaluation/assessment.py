"""Assess a configuration: tune on a validation window, fit before the cutoff, score after.

Both ``python -m training evaluate`` and the quality gate of ``train`` run this, so the
numbers an operator reads in the report are the numbers the gate decides on.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from training.engines.local import Stages, TrainConfig, fit
from training.errors import InputError
from training.evaluation import baselines, report, tuning
from training.evaluation import cases as holdout
from training.evaluation import evaluate as ev
from training.evaluation import recommenders as recs
from training.publish import ModelPayload
from training.stages import ingest, matrices, recipes, upsell

POPULARITY = "popularity"

DEFAULTS_CHOSEN_ON = (
    "Online Retail's validation window, trained before 2011-09-29 and scored 2011-09-29 to "
    "2011-11-02, the reported window after it never read (benchmarks/choose_defaults.py, "
    "benchmarks/pair_stats.py)"
)
"""Where the defaults shipped in code were chosen: windows before any reported one."""

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
    window: tuple[holdout.Split, holdout.Cases] | None = field(default=None, repr=False)
    """The split and the cases scored, for ``rescore`` (``release`` frees them)."""
    fit: Fit = field(default=fit, repr=False)
    """The engine that fit the model scored, which ``rescore`` fits with too."""
    seeds: dict[str, list[ev.MethodResult]] = field(default_factory=dict, repr=False)
    """Per method: its cart scores with the other hide-one seeds (one result a seed)."""
    choices: list[baselines.Choice] = field(default_factory=list)
    """The baselines' settings and how they were chosen (tuned or fixed)."""
    upsell: dict[str, Any] = field(default_factory=dict)
    windows: dict[str, Any] = field(default_factory=dict)
    """Which window chose what, and which one is reported."""
    recipes: dict[str, Any] = field(default_factory=dict)
    """Per task, the recipe served and the validation scores that chose it."""

    def rescore(self, config: TrainConfig, stages: Stages) -> ev.MethodResult:
        """Another recipe fit on the same training window and scored, as served, on the
        same cases: the live model's recipe, for the gate to compare like with like."""
        if self.window is None:
            raise ValueError("this assessment's window was released")
        split, cases = self.window
        quiet = Stages(io.StringIO(), stages.budget)
        payload = self.fit(split.train, config, quiet, for_serving=False)
        payload = ev.with_stored_histories(payload, split.train, config.history_items)
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
            seeds=self.seeds,
            baselines=[c.as_dict() for c in self.choices],
            upsell=self.upsell,
            windows=self.windows,
            recipes=self.recipes,
        )

    def evaluation_meta(self) -> dict[str, Any]:
        """What a published version keeps of its assessment, for the next run's gate."""
        return {
            "cutoff": self.split["cutoff"],
            "served": ev.headline(self.served()),
            "popularity": ev.headline(self.popularity()),
            "comparison": report.comparison(self.results),
            "cases": {"cart": self.split["cart_cases"], "history": self.split["history_cases"]},
            "recipes": self.recipes,
        }


@dataclass(frozen=True)
class EvalOptions:
    cutoff: pd.Timestamp | None = None
    """Test on purchases from here on; None: the last ``test_fraction`` of the time span."""
    test_fraction: float = 0.1
    tune_budget: float = 0.0
    """Seconds for the parameter search; 0 keeps the given parameters."""
    seed: int = 0
    tune_baselines: bool = False
    """Search each baseline's settings too, on the same window with the same budget
    (``evaluate`` does; a nightly ``train`` compares with the fixed settings)."""
    hide_seeds: int = 1
    """Cart cases drawn this many times (another hidden item each): the seed spread."""
    upsell: bool = False
    """Fit the candidate as published (alternatives, catalog) and score its upsell slot."""


def assess(
    frame: pd.DataFrame,
    config: TrainConfig,
    stages: Stages,
    options: EvalOptions | None = None,
    with_baselines: bool = True,
    fit: Fit = fit,
    catalog: pd.DataFrame | None = None,
) -> Assessment:
    """``fit``: the engine's, which fits the candidate scored (the baselines are the
    evaluation's own, whatever the engine).

    Three windows, kept apart: the served model's parameters and every baseline's are
    chosen on the validation window (the last part of the training period); the reported
    window, after ``cutoff``, is scored once with the choices frozen."""
    options = options or EvalOptions()
    cutoff, test_fraction = options.cutoff, options.test_fraction
    tune_budget, seed = options.tune_budget, options.seed
    split = holdout.temporal_split(frame, cutoff, test_fraction)
    tuned: tuning.Tuning | None = None
    fams = baselines.families(seed)
    if with_baselines:
        room, lines = stages.budget.available(), len(split.train)
        for f in [f for f in fams if not f.fits(lines, room)]:
            stages.say(f"  {f.name}: left out, it would not fit the memory budget")
        fams = tuple(f for f in fams if f.fits(lines, room))
    choices = baselines.untuned(fams)
    validation: tuning.Validation | None = None
    if tune_budget > 0:
        validation = tuning.validation_window(split.train, test_fraction, seed)
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
                window=validation,
            )
        stages.say(
            f"  tuned on {tuned.sample['lines']:,} of {tuned.sample['of']:,} lines, "
            f"{len(tuned.trials)} trials"
        )
        if tuned.best is not None:
            config = tuning.with_params(config, tuned.best.params)
        if with_baselines and options.tune_baselines:
            with stages.stage("tune_baselines"):
                data = baselines.Data(
                    validation.inter, validation.split.train, stages.budget.available()
                )
                choices = baselines.tune(
                    fams,
                    data,
                    validation.cases,
                    tune_budget,
                    on_trial=lambda f, t: stages.say(
                        f"  {f.name} {f.label(t.params)}: "
                        + " ".join(f"{k} {v:.4f}" for k, v in t.scores.items())
                        + f" in {t.seconds:.1f}s"
                    ),
                )
            for c in choices:
                stages.say(
                    f"  {c.family}: {len(c.trials)} of {c.grid_size} settings in "
                    f"{c.seconds:.0f}s; chose "
                    + "; ".join(f"{t}: {baselines.label(p)}" for t, p in sorted(c.best.items()))
                )
    recipe_doc: dict[str, Any] = {}
    if with_baselines:
        with stages.stage("recipes"):
            config, recipe_doc = recipes.choose(
                split.train, config, stages, fit, test_fraction, seed, validation
            )
        for line in recipes.lines(recipe_doc):
            stages.say(f"  {line}")
    with stages.stage("evaluate"):
        quiet = Stages(io.StringIO(), stages.budget)
        if options.upsell:
            payload = fit(split.train, config, quiet, for_serving=True, catalog=catalog)
        else:
            payload = fit(split.train, config, quiet, for_serving=False)
        payload = ev.with_stored_histories(payload, split.train, config.history_items)
        inter = matrices.build(split.train)
        cases = holdout.build_cases(split, inter.items, half_life_days=30.0, seed=seed)
        if not cases.cart and not cases.history:
            raise InputError(
                f"nothing to evaluate on: no test order or customer after {split.cutoff} "
                "involves an item bought before it"
            )
        stages.say(
            f"  cases: {len(cases.cart):,} of {cases.population.get('cart', 0):,} cart orders, "
            f"{len(cases.history):,} of {cases.population.get('history', 0):,} customers"
        )
        other_seeds = [
            holdout.build_cases(split, inter.items, 30.0, seed + s, with_histories=False)
            for s in range(1, max(options.hide_seeds, 1))
        ]
        results: list[ev.MethodResult] = []
        seeds: dict[str, list[ev.MethodResult]] = {}

        def score(rec: recs.Recommender) -> None:
            t0 = time.perf_counter()
            results.append(ev.evaluate(rec, cases))
            seeds[rec.name] = [ev.evaluate(rec, c, tasks=frozenset({ev.CART})) for c in other_seeds]
            stages.say(f"  {rec.name}: {time.perf_counter() - t0:.1f}s")

        pop = matrices.popularity(inter).astype(float)
        score(ev.served_from_payload(payload))
        score(recs.popularity_recommender(pop))
        if with_baselines:
            score(recs.past_purchases_recommender(inter.n_items, pop))
            data = baselines.Data(inter, split.train, stages.budget.available())
            for fam in fams:
                t0 = time.perf_counter()
                for result, extra in baselines.fit_tuned([fam], choices, data, cases, other_seeds):
                    results.append(result)
                    seeds[result.name] = extra
                    stages.say(f"  {result.name}: {time.perf_counter() - t0:.1f}s")
        upsell_doc: dict[str, Any] = {}
        if options.upsell:
            upsell_doc = upsell.report(upsell.evaluate(payload, cases.cart, seed=seed))
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
        "hide_seeds": max(options.hide_seeds, 1),
    }
    windows = _windows(split, validation, tuned, choices, options)
    return Assessment(
        config, results, tuned, split_info, dict(stages.seconds), (split, cases), fit,
        seeds, choices, upsell_doc, windows, recipe_doc,
    )  # fmt: skip


def _windows(
    split: holdout.Split,
    validation: tuning.Validation | None,
    tuned: tuning.Tuning | None,
    choices: list[baselines.Choice],
    options: EvalOptions,
) -> dict[str, Any]:
    """Which window chose what: the code's defaults, this run's search, the report."""
    out: dict[str, Any] = {
        "defaults": {
            "window": DEFAULTS_CHOSEN_ON,
            "chose": "the code's defaults (neighbour method, EASE lambda, negatives, recency, "
            "ALS share and weighting, repurchase bonus, the alternatives' 5% cap)",
        },
        "reported": {
            "from": split.cutoff.isoformat(),
            "to": _iso(split.test[ingest.TIMESTAMP].max()),
            "chose": "nothing: scored once, after the choices above were frozen",
        },
    }
    reported = out.pop("reported")
    if validation is not None:
        chose = []
        if tuned is not None:
            chose.append(f"the served parameters ({len(tuned.trials)} trials)")
        tuned_families = [c.family for c in choices if c.trials]
        if tuned_families:
            chose.append("the baselines' settings (" + ", ".join(tuned_families) + ")")
        out["validation"] = {
            "from": validation.split.cutoff.isoformat(),
            "to": split.cutoff.isoformat(),
            "trained_from": _iso(validation.split.train[ingest.TIMESTAMP].min()),
            "chose": "; ".join(chose) or "nothing",
        }
    out["reported"] = reported
    return out


def _iso(value: Any) -> str:
    return pd.Timestamp(value).isoformat()
