"""Per task, the recipe a version serves: its model, or best-sellers where they beat it.

A small shop's customers may come back too rarely for their histories to say more than
what sells best: there the model's suggestions for a stored customer (the e-mail path)
score below best-sellers, and the gate would refuse every nightly model for it, cart and
all. Instead, the recipe of each task is chosen on the validation window (the training
period's last part, never the reported window): the model's answers and best-sellers,
both ranked as the service ranks them, and best-sellers are served for that task when they
score higher. The reported window then scores what is served, and the report says which
recipe serves which task, and why.

Only the customers' task has a choice today; the cart is served from the lists (its
popular fill covers a thin cart).
"""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

import pandas as pd

from recsvc import model as lay
from training.engines.local import Stages, TrainConfig
from training.errors import InputError
from training.evaluation import evaluate as ev
from training.evaluation import tuning
from training.publish import ModelPayload

MODEL, POPULAR = "model", "popular"
NAMES = {MODEL: "the model", POPULAR: "best-sellers"}
MEASURE = "next_recall@10"


def _served(payload: ModelPayload, recipe: str) -> ModelPayload:
    serving = {**payload.meta["serving"], "history_recipe": recipe}
    return replace(payload, meta={**payload.meta, "serving": serving})


def choose(
    train: pd.DataFrame,
    config: TrainConfig,
    stages: Stages,
    fit: Any,
    test_fraction: float,
    seed: int,
    validation: tuning.Validation | None = None,
) -> tuple[TrainConfig, dict[str, Any]]:
    """``config`` with each task's recipe chosen on the validation window, and what was
    compared (the window, the cases, each recipe's score)."""
    assert set(lay.HISTORY_RECIPES) == {MODEL, POPULAR}
    try:
        window = validation or tuning.validation_window(train, test_fraction, seed)
    except (InputError, ValueError) as exc:
        return config, {"next": {"served": MODEL, "why": f"no validation window: {exc}"}}
    cases = window.cases
    if not cases.history:
        why = "no customer of the validation window bought before it: nothing to compare"
        return config, {"next": {"served": MODEL, "why": why}}
    quiet = Stages(io.StringIO(), stages.budget)
    payload = fit(window.split.train, replace(config, history_recipe=MODEL), quiet,
                  for_serving=False)  # fmt: skip
    payload = ev.with_stored_histories(payload, window.split.train, config.history_items)
    scores = {}
    for recipe in (MODEL, POPULAR):
        served = ev.served_from_payload(_served(payload, recipe))
        result = ev.evaluate(served, cases, tasks=frozenset({ev.NEXT}))
        scores[recipe] = float(ev.headline(result)[MEASURE])
    chosen = POPULAR if scores[POPULAR] > scores[MODEL] else MODEL
    doc = {
        "served": chosen,
        "measure": MEASURE,
        "scores": {NAMES[r]: round(v, 4) for r, v in scores.items()},
        "cases": len(cases.history),
        "window": {
            "from": window.split.cutoff.isoformat(),
            "to": pd.Timestamp(window.split.test["timestamp"].max()).isoformat(),
        },
        "why": _why(chosen, scores, len(cases.history)),
    }
    return replace(config, history_recipe=chosen), {"next": doc}


def _why(chosen: str, scores: dict[str, float], cases: int) -> str:
    where = f"{MEASURE} on the validation window, {cases:,} customers"
    model, popular = scores[MODEL], scores[POPULAR]
    if chosen == POPULAR:
        return (
            f"next purchases: best-sellers, because the model scored {model:.3f} against "
            f"{popular:.3f} ({where})"
        )
    return (
        f"next purchases: the model, which scored {model:.3f} against best-sellers' "
        f"{popular:.3f} ({where})"
    )


def lines(doc: dict[str, Any]) -> list[str]:
    """The run log's and the report's lines about the recipes served."""
    out = []
    for task in doc.values():
        out.append(str(task.get("why", "")))
    return [line for line in out if line]
