"""The nightly run: read, assess on a holdout (and tune), gate, refit on all data, publish.

Nothing reaches Redis before the gate has passed: a refused or failed run leaves the live
model exactly as it was.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from training import memory
from training.engines import LOCAL, Engine
from training.engines.local import Stages, TrainConfig
from training.errors import InputError, RefusedError
from training.evaluation import gate
from training.evaluation.assessment import Assessment, EvalOptions, assess
from training.evaluation.report import render_html
from training.neighbours.registry import DEFAULT_METHOD, METHODS, default_method
from training.publish import ModelPayload, Publisher
from training.stages import floor, ingest
from training.stages.catalog import read_catalog


@dataclass(frozen=True)
class GateOptions:
    rules: gate.GateRules = field(default_factory=gate.GateRules)
    force: bool = False
    """Publish even when the gate refuses, or when the candidate cannot be evaluated."""


@dataclass
class TrainResult:
    payload: ModelPayload
    report: ingest.CleanReport
    decision: gate.Decision
    assessment: Assessment | None
    version: str | None = None


def train(
    path: Path | str,
    config: TrainConfig,
    publisher: Publisher | None,
    stages: Stages,
    evaluation: EvalOptions | None = None,
    gating: GateOptions | None = None,
    events: pd.DataFrame | None = None,
    ab_share: float | None = None,
    live_meta: dict[str, Any] | None = None,
    engine: Engine = LOCAL,
) -> TrainResult:
    """``ab_share``: publish the model as an A/B test's candidate, served to that share of
    traffic beside the live version, instead of making it live. ``live_meta``: the live
    version's metadata when there is no ``publisher`` (a dry run still sees the gate's
    comparison); with one, it is read from there. ``engine``: where the stages run
    (``training.engines``); the evaluation, the gate and publishing are the same."""
    evaluation = evaluation or EvalOptions()
    gating = gating or GateOptions()
    catalog = None
    if config.catalog is not None:
        # Read first: a catalog without the required columns fails before any training.
        with stages.stage("catalog_file"):
            catalog, catalog_report = read_catalog(
                config.catalog, config.preset, config.catalog_columns
            )
        for line in catalog_report.lines():
            stages.say("  " + line)
    frame, clean_report = engine.load(str(path), config, stages, events)
    assessment: Assessment | None = None
    scored = engine.evaluation_frame(frame, evaluation.seed)
    floor.require_enough(scored)  # bad input, --force or not
    try:
        assessment = assess(scored, config, stages, evaluation, fit=engine.fit)
        del scored
    except memory.MemoryBudgetError:
        raise
    except InputError as exc:
        if not gating.force:
            raise RefusedError(
                f"the candidate cannot be evaluated ({exc}); --force publishes without the gate"
            ) from exc
        stages.say(f"  not evaluated: {exc}")
        decision = gate.Decision(False, [f"not evaluated: {exc}"])
    if publisher is not None:
        live = publisher.live_version()
        live_meta = publisher.meta(live) if live else None
    if assessment is not None:
        measured = assessment.evaluation_meta()
        decision = gate.check(
            measured["served"],
            measured["popularity"],
            clean_report.rows_kept,
            live_meta,
            gating.rules,
            _against_live_recipe(assessment, config, live_meta, stages, engine.name),
            assessment.split["items_ranked"],
            {
                "cart_hr@10": assessment.split["cart_cases"],
                "next_recall@10": assessment.split["history_cases"],
            },
            _against_popular(assessment),
        )
        assessment.release()
    for line in gate.describe(decision):
        stages.say(f"  gate: {line}")
    for reason in decision.reasons:
        stages.say(f"  gate: {reason}")
    if not decision.passed and not gating.force:
        raise RefusedError("quality gate refused the candidate: " + "; ".join(decision.reasons))

    chosen = assessment.config if assessment else config
    # The gate judged a model fit before the cutoff; the one served sees every purchase.
    payload = engine.fit(frame, chosen, stages, catalog=catalog)
    gate_meta = {**decision.as_dict(), "forced": not decision.passed}
    payload.meta["source"] = {
        "file": _name(path),
        **asdict(clean_report),
        "rows_kept": clean_report.rows_kept,
    }
    payload.meta["gate"] = gate_meta
    report = None
    if assessment is not None:
        payload.meta["evaluation"] = assessment.evaluation_meta()
        payload.meta["params"]["tuned"] = assessment.tuning is not None
        report = assessment.report(gate=gate_meta)
    payload.meta["stage_seconds"] = dict(stages.seconds)
    payload.meta["stage_peak_mib"] = dict(stages.peak_mib)
    payload.meta["memory_budget_mib"] = stages.budget.limit // memory.MIB
    payload = replace(
        payload,
        report=report,
        report_html=render_html(report, f"recsvc model evaluation ({_name(path)})")
        if report
        else None,
    )
    result = TrainResult(payload, clean_report, decision, assessment)
    if publisher is not None:
        with stages.stage("publish"):
            result.version = publisher.publish(payload, ab_share=ab_share)
    return result


def _name(path: Path | str) -> str:
    return str(path).rstrip("/").rsplit("/", 1)[-1]


def _against_live_recipe(
    assessment: Assessment,
    config: TrainConfig,
    live_meta: dict[str, Any] | None,
    stages: Stages,
    engine: str = "local",
) -> gate.Paired | None:
    """The candidate's and the live recipe's scores case by case, both fit on the
    candidate's window. The same recipe fits the same model: the candidate's own scores
    stand for both, with no second fit."""
    params = (live_meta or {}).get("params")
    if not params:
        return None
    live_config = config.with_recipe(params)
    if engine not in METHODS.get(live_config.method, METHODS[DEFAULT_METHOD]).engines:
        # A live model trained on another engine: its recipe refit with this engine's
        # method, said, not swapped in silence.
        nearest = default_method(engine)
        stages.say(
            f"  the live version's neighbour method {live_config.method} does not run on the "
            f"{engine} engine: the gate refits its recipe with {nearest}"
        )
        live_config = replace(live_config, method=nearest)
    ours = assessment.served()
    if live_config.params() == assessment.config.params():
        theirs = ours
    else:
        with stages.stage("gate_refit"):
            theirs = assessment.rescore(live_config, stages)
    return {name: (ours.per_case[key], theirs.per_case[key]) for name, key in gate.PER_CASE.items()}


def _against_popular(assessment: Assessment) -> gate.Paired:
    """What is served and popular items, case by case, per gated measure."""
    ours, theirs = assessment.served().per_case, assessment.popularity().per_case
    return {
        name: (ours[key], theirs[key])
        for name, key in gate.PER_CASE.items()
        if key in ours and key in theirs
    }
