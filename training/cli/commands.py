"""``train`` and ``evaluate``: the run, its progress lines and its summary."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import redis

from recsvc.answers.picks import PickRecipe
from recsvc.config import Settings, redact_url
from recsvc.store import backend as storage
from recsvc.store.embedded import EmbeddedRedisError, EmbeddedRedisForbiddenError, redis_url_for
from training import workflow
from training.cli.options import DEFAULT_TUNE_BUDGET, config_of, engine_of, eval_options
from training.engines.local import Stages
from training.errors import (
    InputError,
    RecsvcError,
    StoreUnavailableError,
)
from training.evaluation import evaluate as ev
from training.evaluation.assessment import assess
from training.evaluation.baselines import label
from training.evaluation.gate import GATED, GateRules
from training.evaluation.report import INTERVAL_HEAD, interval_cells, render_html
from training.evaluation.tuning import params_of
from training.publish import Publisher
from training.stages import events, upsell
from training.stages.catalog import read_catalog
from training.workflow import GateOptions


def progress(stages: Stages | None) -> Callable[[int, int, str], None] | None:
    """Publishing progress on stderr, a line each tenth of items and of customers."""
    if stages is None:
        return None
    shown: dict[str, int] = {}

    def report(done: int, total: int, what: str) -> None:
        tenth = 10 * done // max(total, 1)
        if tenth > shown.get(what, -1):
            shown[what] = tenth
            stages.say(f"  published {done:,} of {total:,} {what}")

    return report


@contextmanager
def open_publisher(settings: Settings, stages: Stages | None = None) -> Iterator[Publisher]:
    try:
        with redis_url_for(
            settings.redis_url, settings.data_dir, allow_embedded=settings.allow_embedded_redis
        ) as url:
            client = storage.sync_client(url, settings.redis_cluster)
            try:
                client.ping()
            except redis.RedisError as exc:
                raise StoreUnavailableError(
                    f"redis at {redact_url(url)} did not answer: {exc}"
                ) from exc
            try:
                yield Publisher(client, settings.layout, on_progress=progress(stages))
            finally:
                storage.close_sync(client)
    except EmbeddedRedisForbiddenError as exc:
        raise InputError(str(exc)) from exc
    except EmbeddedRedisError as exc:
        raise StoreUnavailableError(str(exc)) from exc


def run_train(args: argparse.Namespace, settings: Settings, stages: Stages) -> None:
    config = config_of(args)
    where = "a dry run, publishing nothing" if args.dry_run else "publishing"
    stages.say(f"key prefix {settings.key_prefix!r} ({where}; --prefix to choose another)")
    if config.picks is not None:
        # Picks ranked with the service's own settings (the same RECSVC_* environment).
        config = replace(config, picks=PickRecipe.for_settings(settings, config.picks.n))
    evaluation = eval_options(args, default_budget=0.0)
    if args.gate_min_cases < 1:
        raise InputError(f"--gate-min-cases must be at least 1, got {args.gate_min_cases}")
    rules = GateRules(args.gate_tolerance, args.min_data_ratio, args.gate_min_cases)
    gating = GateOptions(rules, args.force)
    extra = None
    if args.include_events:
        with open_publisher(settings) as reader:
            try:
                extra = events.read_events(reader.client, reader.layout)
            except redis.RedisError as exc:
                raise StoreUnavailableError(f"cannot read the order events: {exc}") from exc
        stages.say(f"  {len(extra):,} order lines from live events")
    if args.dry_run:
        live_meta = None
        try:  # a dry run shows the gate's comparison with the live model too
            with open_publisher(settings) as reader:
                live = reader.live_version()
                live_meta = reader.meta(live) if live else None
        except RecsvcError as exc:
            stages.say(f"  no live model to compare with: {exc}")
        result = workflow.train(
            args.purchases,
            config,
            None,
            stages,
            evaluation,
            gating,
            extra,
            live_meta=live_meta,
            engine=engine_of(args),
        )
    else:
        with open_publisher(settings, stages) as publisher, publisher.hold(args.wait_lock):
            result = workflow.train(
                args.purchases,
                config,
                publisher,
                stages,
                evaluation,
                gating,
                extra,
                args.ab_share,
                engine=engine_of(args),
            )
    counts = result.payload.meta["counts"]
    served = result.payload.meta.get("evaluation", {}).get("served", {})
    measured = " ".join(f"{k}={v:.4f}" for k, v in served.items() if k in GATED)
    gate_word = "passed" if result.decision.passed else "forced"
    seconds = " ".join(
        f"{k}={v:.2f}s/{stages.peak_mib.get(k, 0)}MiB" for k, v in stages.seconds.items()
    )
    ab = f" ab_share={args.ab_share}" if args.ab_share is not None and result.version else ""
    print(
        f"trained: rows_read={result.report.rows_read} rows_kept={result.report.rows_kept} "
        f"customers={counts['customers']} items={counts['items']} {measured} "
        f"gate={gate_word} {seconds} version={result.version or '(dry run, not published)'}" + ab
    )


def run_evaluate(args: argparse.Namespace, stages: Stages) -> None:
    config = config_of(args)
    evaluation = eval_options(args, default_budget=DEFAULT_TUNE_BUDGET)
    engine = engine_of(args)
    local = args.engine == "local"
    # evaluate tunes the baselines with the served model's budget, draws the cart cases
    # with three hide-one seeds and, on the local engine, scores the upsell slot.
    evaluation = replace(
        evaluation, tune_baselines=True, hide_seeds=EVALUATE_HIDE_SEEDS, upsell=local
    )
    catalog = None
    if config.catalog is not None and local:
        with stages.stage("catalog_file"):
            catalog, _report = read_catalog(config.catalog, config.preset, config.catalog_columns)
    frame, _ = engine.load(args.purchases, config, stages)
    scored = engine.evaluation_frame(frame, evaluation.seed)
    result = assess(scored, config, stages, evaluation, fit=engine.fit, catalog=catalog)
    result.release()  # nothing is rescored here: the split's frames can go
    doc = result.report()
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        page = render_html(doc, f"recsvc evaluation ({Path(args.purchases).name})")
        (args.out / "report.html").write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the report to {args.out}: {exc}") from exc
    for line in evaluation_lines(doc, result.results):
        print(line)
    print("parameters: " + " ".join(f"{k}={v}" for k, v in params_of(result.config).items()))
    print(f"report: {args.out / 'report.html'} and {args.out / 'report.json'}")


EVALUATE_HIDE_SEEDS = 3


def evaluation_lines(doc: dict[str, Any], results: Sequence[ev.MethodResult]) -> list[str]:
    """What ``evaluate`` prints: which window chose what, the methods with intervals, the
    baselines' settings, served against the best baseline per task, and the upsell."""
    out = ["windows:"]
    for name, w in doc["windows"].items():
        period = f"{w['from']} to {w['to']}" if "from" in w else w.get("window", "")
        out.append(f"  {name}: {period}; chose {w['chose']}")
    out += ["", ev.table(results), ""]
    head = f"{'method':32s} " + " ".join(f"{h:>26s}" for h in INTERVAL_HEAD)
    out += ["95% intervals (bootstrap over cases) and the cart's spread over hide-one seeds:"]
    out += [head, "-" * len(head)]
    for m in doc["methods"]:
        out.append(f"{m['name']:32s} " + " ".join(f"{c:>26s}" for c in interval_cells(m)))
    if doc["baselines"]:
        out += ["", "baselines' settings (chosen on the validation window, per task):"]
        for b in doc["baselines"]:
            chosen = "; ".join(f"{t}: {label(p)}" for t, p in sorted(b["best"].items()))
            tried = f"{len(b['trials'])} of {b['grid_size']} settings" if b["trials"] else "fixed"
            out.append(f"  {b['family']} ({tried}): {chosen}")
    out.append("")
    for c in doc["comparison"].values():
        interval = ""
        if "verdict" in c:
            seeds = c.get("seeds")
            spread = (
                f"; over {seeds['count']} hide-one seeds {min(seeds['difference']):+.4f} to "
                f"{max(seeds['difference']):+.4f}, lowest bound {min(seeds['low']):+.4f}"
                if seeds
                else ""
            )
            interval = (
                f", 95% interval {c['low']:+.4f} to {c['high']:+.4f} on {c['cases']:,} cases"
                f"{spread}: {c['verdict'].upper()}"
            )
        out.append(
            f"{c['label']}: served {c['served']:.4f}, best baseline {c['best_baseline']} "
            f"{c['best_baseline_value']:.4f} ({c['margin']:+.4f}{interval})"
        )
    if doc.get("upsell") is not None:
        out += ["", *upsell.lines(doc["upsell"])]
    return out
