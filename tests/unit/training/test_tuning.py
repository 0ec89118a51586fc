"""The parameter search: it sees the training split only, and keeps to its budget."""

from __future__ import annotations

import io
import random
from dataclasses import replace
from typing import Any

import pandas as pd
import pytest

from tests.conftest import TEST_CONFIG, grouped_purchases
from training.engines import local as pipeline
from training.engines.local import Stages, TrainConfig
from training.evaluation import cases as holdout
from training.evaluation import tuning


def test_trials_never_see_the_test_window(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = grouped_purchases()
    split = holdout.temporal_split(frame, None, test_fraction=0.2)
    seen: list[pd.Timestamp] = []
    real_fit = pipeline.fit

    def spy(train: pd.DataFrame, config: TrainConfig, stages: Stages, **kw: Any) -> Any:
        seen.append(train["timestamp"].max())
        return real_fit(train, config, stages, **kw)

    monkeypatch.setattr(tuning, "fit", spy)
    result = tuning.tune(split.train, TEST_CONFIG, budget_seconds=2.0, max_trials=6)
    # Every trial fits but the repurchase-scale sweep's, which re-serves the first model.
    sweep = len(tuning.SPACE["repurchase_scale"]) - 1
    assert seen and len(seen) == len(result.trials) - sweep
    validation_cutoff = pd.Timestamp(result.validation_cutoff)
    # Trials fit before the validation cutoff, which lies inside the training split.
    assert all(t < validation_cutoff for t in seen)
    assert validation_cutoff < split.cutoff


def test_the_budget_bounds_the_search_but_one_trial_always_runs() -> None:
    frame = grouped_purchases()
    result = tuning.tune(frame, TEST_CONFIG, budget_seconds=0.0, max_trials=10)
    # The given parameters, then the same model served with each other repurchase scale
    # (no refit, so the budget does not stop it).
    first, *sweep = result.trials
    assert first.params == tuning.params_of(TEST_CONFIG)
    assert [t.params["repurchase_scale"] for t in sweep] == [
        x for x in tuning.SPACE["repurchase_scale"] if x != TEST_CONFIG.repurchase_scale
    ]
    for t in sweep:
        assert {k: v for k, v in t.params.items() if k != "repurchase_scale"} == {
            k: v for k, v in first.params.items() if k != "repurchase_scale"
        }
        # Only next purchases with repurchases can move: carts and new items are kept.
        assert t.headline["cart_hr@10"] == first.headline["cart_hr@10"]
        assert t.headline["next_new_recall@10"] == first.headline["next_new_recall@10"]
    assert result.best in result.trials
    # The next trial was drawn, estimated, and not started.
    assert result.skipped["params"] and result.skipped["estimate_s"] >= 0.0


def test_a_trial_is_estimated_by_its_als_work() -> None:
    base = tuning.params_of(TEST_CONFIG)
    heavy = {**base, "factors": 128, "iterations": 25}
    assert tuning.cost_units(heavy) > tuning.cost_units(base) > 1.0


def test_large_data_is_tuned_on_a_sample_of_whole_customers() -> None:
    frame = grouped_purchases(orders=960)
    sample = tuning.subsample(frame, max_lines=len(frame) // 3, seed=1)
    assert 0 < len(sample) <= len(frame) // 3
    kept = set(sample["customer"])
    # Whole customers: every line of a kept customer is kept.
    assert (frame["customer"].isin(kept)).sum() == len(sample)
    result = tuning.tune(frame, TEST_CONFIG, 0.0, max_lines=len(frame) // 3)
    assert result.sample == {"lines": result.sample["lines"], "of": len(frame)}
    assert result.sample["lines"] <= len(frame) // 3


def test_a_trial_must_beat_the_given_parameters_clearly_to_be_chosen() -> None:
    frame = grouped_purchases()
    result = tuning.tune(frame, TEST_CONFIG, budget_seconds=60.0, max_trials=4, min_gain=10.0)
    assert len(result.trials) == 4
    # No trial can score eleven times the first: the given parameters stay.
    assert result.best is result.trials[0]
    chosen = tuning.with_params(TEST_CONFIG, result.trials[2].params)
    assert tuning.params_of(chosen) == result.trials[2].params


def test_the_repurchase_scale_weighs_a_bought_item_in_strong_neighbour_units() -> None:
    frame = grouped_purchases()
    quiet = Stages(io.StringIO())
    one = pipeline.fit(frame, TEST_CONFIG, quiet, for_serving=False).meta["serving"]
    ten = pipeline.fit(frame, replace(TEST_CONFIG, repurchase_scale=10.0), quiet, for_serving=False)
    assert ten.meta["serving"]["repurchase_weight"] == pytest.approx(10 * one["repurchase_weight"])
    assert ten.meta["serving"]["repurchase_bonus"] == pytest.approx(one["repurchase_bonus"])
    assert ten.meta["params"]["repurchase_scale"] == 10.0
    # A published recipe carries it, so the gate refits the live model with it.
    assert TEST_CONFIG.with_recipe(ten.meta["params"]).repurchase_scale == 10.0


def test_the_search_varies_only_what_the_method_reads() -> None:
    """Each method's own parameters are tuned for it alone (co-occurrence has none); the
    parameters every recipe reads are tuned for all."""
    for method in ("cooccurrence", "ease", "ease-als"):
        space = tuning.space_for(method)
        assert {"weighting", "recency_half_life_days", "repurchase_scale"} <= set(space)
        assert ("ease_lambda" in space) == method.startswith("ease")
        assert ("als_weight" in space) == (method == "ease-als")
    draw = tuning.candidates(
        {k: v[0] for k, v in tuning.SPACE.items()}, random.Random(3), tuning.space_for("ease")
    )
    draws = [draw() for _ in range(30)]
    assert {d["als_weight"] for d in draws} == {tuning.SPACE["als_weight"][0]}
    assert len({d["ease_lambda"] for d in draws}) > 1
