"""``python -m training``: train and publish, roll back, show status, run A/B tests.

Exit codes (for cron): 0 success, 1 unexpected failure, 2 bad input (or configuration),
3 Redis unreachable, 4 another trainer holds the lock, 5 refused by the quality gate,
6 Redis out of memory, 7 nothing to act on (no previous version to roll back to, no A/B
test to promote or abort, no live version to test a candidate against).

A ``train`` run holds the publisher lock from its start to its switch: one trainer per
key prefix, and the model live before it always stays as the rollback target.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import redis

from recsvc.config import Settings, SettingsError, load_settings, redact_url
from recsvc.helptext import HelpFormatter, plain
from recsvc.store import backend as storage
from recsvc.store.embedded import EmbeddedRedisError, EmbeddedRedisForbiddenError, redis_url_for
from training import memory, workflow
from training.engines import ENGINES, LOCAL, Engine
from training.engines.local import Stages, TrainConfig
from training.errors import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    InputError,
    StoreUnavailableError,
    TrainingError,
)
from training.evaluation import evaluate as ev
from training.evaluation.assessment import EvalOptions, assess
from training.evaluation.baselines import label
from training.evaluation.gate import GATED, GateRules
from training.evaluation.report import INTERVAL_HEAD, interval_cells, render_html
from training.evaluation.tuning import params_of
from training.neighbours.methods import METHODS
from training.publish.publisher import Publisher
from training.stages import events, ingest, matrices, parsing, upsell
from training.stages.als import AlsParams
from training.stages.catalog import CATALOG_PRESETS, CatalogColumns, read_catalog
from training.workflow import GateOptions

COLUMN_NAMES = (
    "customer",
    "item",
    "order",
    "quantity",
    "timestamp",
    "price",
    "total",
    "description",
    "status",
)
COLUMN_HELP = {
    "customer": "customer ids (required unless the preset names it)",
    "item": "item ids (required unless the preset names it)",
    "order": "order ids; without, a customer's lines at one timestamp are one order",
    "quantity": "quantities; without, every line counts 1",
    "timestamp": "purchase times; without, no temporal split or recency",
    "price": "unit prices",
    "total": "line totals, when there is no unit price: price = total / quantity",
    "description": "item titles, when there is no catalog",
    "status": "order status: refunded, voided and cancelled orders are dropped by it",
}
DEFAULT_TUNE_BUDGET = 120.0
"""Seconds ``evaluate`` searches parameters for unless told otherwise."""


def _data_options() -> argparse.ArgumentParser:
    """Options every command that reads purchases shares: the file, columns, cleaning."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--purchases",
        required=True,
        help="CSV(.gz) or Parquet file; with --engine spark, any path Spark reads (a "
        "directory of Parquet parts, hdfs://, s3a://)",
    )
    x = p.add_argument_group("engine")
    x.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="where the stages run: this process (local), or Apache Spark (spark: pip "
        "install -e '.[spark]', Java 17); complements are then co-occurrence",
    )
    x.add_argument(
        "--spark-master",
        metavar="URL",
        help="Spark master: local[*], local[2], spark://host:7077, yarn, k8s://https://... "
        "(default: spark-submit's --master, else local[*])",
    )
    x.add_argument(
        "--spark-conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Spark setting, as spark-submit's --conf (repeatable), e.g. spark.driver.memory=8g",
    )
    x.add_argument(
        "--eval-sample-lines",
        type=int,
        default=2_000_000,
        metavar="N",
        help="with --engine spark: lines the evaluation scores at most (a seeded sample "
        "of customers beyond it)",
    )
    p.add_argument(
        "--preset", choices=sorted(ingest.PRESETS), help="column mapping of a known export"
    )
    cols = p.add_argument_group("columns (override the preset)")
    for name in COLUMN_NAMES:
        cols.add_argument(
            f"--{name}-col", dest=f"{name}_col", metavar="NAME", help=COLUMN_HELP[name]
        )
    p.add_argument(
        "--catalog",
        type=Path,
        help="CSV or Parquet: item_id, title, category, price, available (+ brand, margin,"
        " cost, image_url, url); default: titles and prices from the purchases",
    )
    k = p.add_argument_group(
        "catalog columns (override the mapping of a platform's product export, or name "
        "any other file's)"
    )
    for name in CATALOG_FIELDS:
        k.add_argument(
            f"--catalog-{name.replace('_', '-')}-col",
            dest=f"catalog_{name}_col",
            metavar="NAME",
            help=f"the catalog's {name.replace('_', ' ')} column",
        )
    c = p.add_argument_group("cleaning")
    c.add_argument(
        "--cancelled-prefix",
        default=None,
        help="order ids starting with this are cancellations ('' to keep all); default: "
        "the preset's (online-retail: C), else none: refunds and cancellations are "
        "dropped by the order status column",
    )
    c.add_argument(
        "--delimiter",
        type=_delimiter,
        default=None,
        metavar="CHAR",
        help="the CSV's delimiter (',' ';' tab '|'); default: sniffed from its header",
    )
    c.add_argument(
        "--date-format",
        default=None,
        metavar="FORMAT",
        help="day-first, month-first, or a strftime format ('%%d/%%m/%%Y %%H:%%M'); "
        "default: inferred from the whole column (ambiguous dates exit 2 and ask)",
    )
    c.add_argument(
        "--non-product-pattern",
        default=None,
        help="regex (full match, case-insensitive) of non-product item ids ('' for none);"
        " default: the preset's, else postage, fees and adjustments",
    )
    c.add_argument(
        "--non-product",
        action="append",
        default=[],
        metavar="ITEM",
        help="an item id that is not a product (repeatable)",
    )
    c.add_argument("--keep-duplicates", action="store_true", help="keep exact duplicate rows")
    d = TrainConfig
    m = p.add_argument_group("model (the tuning starts from these)")
    m.add_argument(
        "--weighting",
        choices=matrices.WEIGHTINGS,
        default=d.weighting,
        help="ALS confidence of a purchase",
    )
    m.add_argument("--factors", type=int, default=AlsParams.factors, help="ALS factors")
    m.add_argument("--regularization", type=float, default=AlsParams.regularization, help="ALS")
    m.add_argument("--alpha", type=float, default=AlsParams.alpha, help="ALS confidence scale")
    m.add_argument("--iterations", type=int, default=AlsParams.iterations, help="ALS iterations")
    m.add_argument("--seed", type=int, default=AlsParams.random_state, help="ALS random seed")
    m.add_argument("--neighbours", type=int, default=d.top_n, help="neighbours kept per item")
    m.add_argument(
        "--method", choices=sorted(METHODS), default=d.method, help="how neighbours are computed"
    )
    m.add_argument("--ease-lambda", type=float, default=d.ease_lambda, help="EASE regularisation")
    m.add_argument("--als-weight", type=float, default=d.als_weight, help="ALS share in ease-als")
    m.add_argument(
        "--recency-half-life",
        type=float,
        default=d.recency_half_life_days,
        metavar="DAYS",
        help="orders this many days older count half (0: all alike)",
    )
    m.add_argument(
        "--negatives", type=int, default=d.negatives, help="negative weights kept per item"
    )
    m.add_argument(
        "--repurchase-bonus",
        type=float,
        default=d.repurchase_bonus,
        help="bonus of an item bought before, in strong-neighbour weights",
    )
    m.add_argument(
        "--repurchase-scale",
        type=float,
        default=d.repurchase_scale,
        help="weight of a bought item's own orders against its complements, in "
        "strong-neighbour weights (the search sweeps it)",
    )
    m.add_argument(
        "--history-items",
        type=int,
        default=d.history_items,
        help="distinct items stored per customer for /v1/customers: the most bought and "
        "latest (0: none)",
    )
    p.add_argument(
        "--memory-budget",
        metavar="SIZE",
        help="memory the trainer may use, e.g. 3.5GiB or 8Gi (default: "
        "RECSVC_TRAIN_MEMORY_BUDGET, else 3.5GiB, which fits the CronJob's 4Gi limit); "
        "a run that cannot fit stops with exit code 2 before it allocates",
    )
    e = p.add_argument_group("evaluation")
    e.add_argument(
        "--cutoff",
        type=_timestamp,
        help="test on purchases from this date on (default: the last --test-fraction of time)",
    )
    e.add_argument(
        "--test-fraction",
        type=float,
        default=0.1,
        help="share of the time span held out for testing, without --cutoff",
    )
    e.add_argument(
        "--eval-seed", type=int, default=0, help="which cart item is hidden, and trial order"
    )
    e.add_argument(
        "--tune-budget",
        type=float,
        metavar="SECONDS",
        help="time for the parameter search on a validation window (0: no search; "
        f"default: 0 for train, {DEFAULT_TUNE_BUDGET:.0f} for evaluate)",
    )
    return p


def _parser(prog: str = "python -m training") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description=plain(__doc__), formatter_class=HelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    data = _data_options()
    lock = argparse.ArgumentParser(add_help=False)
    lock.add_argument(
        "--wait-lock",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to this long for another trainer's lock before exiting 4 (default 0)",
    )
    t = sub.add_parser(
        "train",
        parents=[data, lock],
        formatter_class=HelpFormatter,
        help="evaluate, gate, and publish a new version (tuning: --tune-budget)",
    )
    g = t.add_argument_group("quality gate")
    g.add_argument(
        "--force", action="store_true", help="publish even if the gate refuses the candidate"
    )
    g.add_argument(
        "--gate-tolerance",
        type=float,
        default=GateRules.tolerance,
        help="relative drop allowed against the live recipe refit on this window, even "
        "beyond the noise",
    )
    g.add_argument(
        "--gate-min-cases",
        type=int,
        default=GateRules.min_cases,
        help="held-out cases a task needs before the candidate is judged against the live "
        "recipe on it",
    )
    g.add_argument(
        "--min-data-ratio",
        type=float,
        default=GateRules.min_data_ratio,
        help="refuse data smaller than this share of the live model's",
    )
    t.add_argument("--dry-run", action="store_true", help="train and report, publish nothing")
    t.add_argument(
        "--include-events",
        action="store_true",
        help="add the live order events the service has heard (POST /v1/events/orders) "
        "to the purchases; orders the file already holds are not counted twice",
    )
    t.add_argument(
        "--ab-share",
        type=_share,
        metavar="SHARE",
        help="publish as the candidate of an A/B test, served to this share (0 to 1) of the "
        "customers and visitors beside the live version, which stays live; end the test "
        "with promote or abort",
    )
    ev = sub.add_parser(
        "evaluate",
        parents=[data],
        formatter_class=HelpFormatter,
        help="tune and score against baselines on a temporal holdout; write the report",
    )
    ev.add_argument(
        "--out", type=Path, default=Path("recsvc-report"), help="directory for the report"
    )
    for name, text in (
        ("rollback", "make the previous version live again"),
        ("promote", "end the A/B test: its candidate becomes live (rollback undoes it)"),
        ("abort", "end the A/B test: the live version stays, the candidate is no longer served"),
    ):
        sub.add_parser(name, parents=[lock], help=text, formatter_class=HelpFormatter)
    sub.add_parser(
        "status",
        help="show the live, previous and candidate versions and the A/B test",
        formatter_class=HelpFormatter,
    )
    return p


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"an A/B share must be between 0 and 1, got {text}")
    return value


def _timestamp(text: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date: {text!r}") from exc
    return stamp if stamp.tzinfo else stamp.tz_localize("UTC")


def _columns(args: argparse.Namespace) -> ingest.Columns:
    base = ingest.PRESETS[args.preset] if args.preset else None
    values: dict[str, str | None] = {}
    for name in COLUMN_NAMES:
        given = getattr(args, f"{name}_col")
        values[name] = given if given else (getattr(base, name) if base else None)
    customer, item = values.pop("customer"), values.pop("item")
    if not customer or not item:
        raise InputError(
            "name the customer and item columns (--customer-col, --item-col) or use --preset"
        )
    extra = {"cancelled_at": base.cancelled_at, "item_fallback": base.item_fallback} if base else {}
    return ingest.Columns(customer, item, **values, **extra)


CATALOG_FIELDS = (
    "item_id", "title", "category", "price", "available", "brand", "image_url", "url",
    "inventory", "status", "sale_price",
)  # fmt: skip


def _catalog_columns(args: argparse.Namespace) -> CatalogColumns | None:
    """The catalog mapping the flags give, on top of the preset's (or the plain one)."""
    given = {n: getattr(args, f"catalog_{n}_col") for n in CATALOG_FIELDS}
    given = {n: v for n, v in given.items() if v}
    if not given:
        return None
    base = CATALOG_PRESETS.get(args.preset or "", CatalogColumns())
    required = tuple(f for f in ("item_id", "title", "price") if f in base.required)
    return replace(base, **given, required=required)


def _delimiter(text: str) -> str:
    try:
        return parsing.delimiter_option(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _cancelled_prefix(args: argparse.Namespace) -> str | None:
    if args.cancelled_prefix is not None:
        return str(args.cancelled_prefix) or None
    return ingest.PRESET_CANCELLED_PREFIXES.get(args.preset or "")


def _non_product_pattern(args: argparse.Namespace) -> str | None:
    if args.non_product_pattern is not None:
        return str(args.non_product_pattern) or None
    return ingest.PRESET_NON_PRODUCT_PATTERNS.get(
        args.preset or "", ingest.DEFAULT_NON_PRODUCT_PATTERN
    )


def _config(args: argparse.Namespace) -> TrainConfig:
    for flag, value, low in (
        ("--factors", args.factors, 1),
        ("--iterations", args.iterations, 1),
        ("--neighbours", args.neighbours, 1),
        ("--negatives", args.negatives, 0),
        ("--history-items", args.history_items, 0),
    ):
        if value < low:
            raise InputError(f"{flag} must be at least {low}, got {value}")
    for flag, fvalue in (
        ("--regularization", args.regularization),
        ("--alpha", args.alpha),
        ("--ease-lambda", args.ease_lambda),
        ("--als-weight", args.als_weight),
        ("--recency-half-life", args.recency_half_life),
        ("--repurchase-bonus", args.repurchase_bonus),
        ("--repurchase-scale", args.repurchase_scale),
    ):
        if fvalue < 0:
            raise InputError(f"{flag} must not be negative, got {fvalue}")
    return TrainConfig(
        columns=_columns(args),
        cleaning=ingest.CleaningRules(
            cancelled_order_prefix=_cancelled_prefix(args),
            date_format=args.date_format,
            non_product_pattern=_non_product_pattern(args),
            non_product_items=frozenset(args.non_product),
            drop_duplicates=not args.keep_duplicates,
        ),
        weighting=args.weighting,
        als=AlsParams(args.factors, args.regularization, args.alpha, args.iterations, args.seed),
        # The Spark engine's complements are pair counts: co-occurrence, no negatives.
        method="cooccurrence" if args.engine == "spark" else args.method,
        top_n=args.neighbours,
        ease_lambda=args.ease_lambda,
        als_weight=args.als_weight,
        recency_half_life_days=args.recency_half_life,
        negatives=0 if args.engine == "spark" else args.negatives,
        repurchase_bonus=args.repurchase_bonus,
        repurchase_scale=args.repurchase_scale,
        history_items=args.history_items,
        catalog=args.catalog,
        delimiter=args.delimiter,
        catalog_columns=_catalog_columns(args),
        preset=args.preset,
    )


def _engine(args: argparse.Namespace) -> Engine:
    if args.engine == "local":
        return LOCAL
    try:
        from training.engines.spark.engine import SparkEngine
    except ImportError as exc:
        raise InputError(
            f"--engine spark needs pyspark ({exc}): pip install -e '.[spark]', with Java 17 "
            "(apt-get install openjdk-17-jre-headless)"
        ) from exc

    # What the Spark engine's reader does not do yet is refused, never guessed: it reads
    # comma (or .tsv) files and ISO dates, by the explicit columns or Online Retail's.
    unsupported = [
        flag
        for flag, given in (
            (f"--preset {args.preset}", args.preset not in (None, "online-retail")),
            ("--status-col", bool(args.status_col)),
            ("--date-format", bool(args.date_format)),
            ("--delimiter", args.delimiter not in (None, ",")),
        )
        if given
    ]
    if unsupported:
        raise InputError(
            f"--engine spark does not read {', '.join(unsupported)} yet: a platform's own "
            "export fits one machine, so train it on the local engine (the default)"
        )
    conf = {}
    for item in args.spark_conf:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--spark-conf takes KEY=VALUE, got {item!r}")
        conf[key.strip()] = value.strip()
    if args.eval_sample_lines < 1:
        raise InputError(f"--eval-sample-lines must be at least 1, got {args.eval_sample_lines}")
    return SparkEngine(args.spark_master, conf, args.eval_sample_lines)


def _eval_options(args: argparse.Namespace, default_budget: float) -> EvalOptions:
    if not 0.0 < args.test_fraction < 1.0:
        raise InputError(f"--test-fraction must be between 0 and 1, got {args.test_fraction}")
    if args.engine != "local":
        default_budget = 0.0  # the search tunes the local engine's recipes
        if args.tune_budget:
            raise InputError(
                "--tune-budget searches the local engine's recipes: use it with --engine local"
            )
    budget = default_budget if args.tune_budget is None else args.tune_budget
    if budget < 0:
        raise InputError(f"--tune-budget must not be negative, got {budget}")
    return EvalOptions(args.cutoff, args.test_fraction, budget, args.eval_seed)


def _progress(stages: Stages | None) -> Callable[[int, int, str], None] | None:
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
def _publisher(settings: Settings, stages: Stages | None = None) -> Iterator[Publisher]:
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
                yield Publisher(client, settings.layout, on_progress=_progress(stages))
            finally:
                client.close()
    except EmbeddedRedisForbiddenError as exc:
        raise InputError(str(exc)) from exc
    except EmbeddedRedisError as exc:
        raise StoreUnavailableError(str(exc)) from exc


def _train(args: argparse.Namespace, settings: Settings, stages: Stages) -> None:
    config = _config(args)
    evaluation = _eval_options(args, default_budget=0.0)
    if args.gate_min_cases < 1:
        raise InputError(f"--gate-min-cases must be at least 1, got {args.gate_min_cases}")
    rules = GateRules(args.gate_tolerance, args.min_data_ratio, args.gate_min_cases)
    gating = GateOptions(rules, args.force)
    extra = None
    if args.include_events:
        with _publisher(settings) as reader:
            try:
                extra = events.read_events(reader.client, reader.layout)
            except redis.RedisError as exc:
                raise StoreUnavailableError(f"cannot read the order events: {exc}") from exc
        stages.say(f"  {len(extra):,} order lines from live events")
    if args.dry_run:
        live_meta = None
        try:  # a dry run shows the gate's comparison with the live model too
            with _publisher(settings) as reader:
                live = reader.live_version()
                live_meta = reader.meta(live) if live else None
        except TrainingError as exc:
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
            engine=_engine(args),
        )
    else:
        with _publisher(settings, stages) as publisher, publisher.hold(args.wait_lock):
            result = workflow.train(
                args.purchases,
                config,
                publisher,
                stages,
                evaluation,
                gating,
                extra,
                args.ab_share,
                engine=_engine(args),
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


def _evaluate(args: argparse.Namespace, stages: Stages) -> None:
    config = _config(args)
    evaluation = _eval_options(args, default_budget=DEFAULT_TUNE_BUDGET)
    engine = _engine(args)
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


def main(
    argv: Sequence[str] | None = None,
    settings: Settings | None = None,
    prog: str = "python -m training",
) -> int:
    args = _parser(prog).parse_args(argv)
    try:
        settings = settings or load_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        budget_text = getattr(args, "memory_budget", None) or settings.train_memory_budget
        stages = Stages(budget=memory.Budget.parse(budget_text))
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    try:
        if args.command == "train":
            _train(args, settings, stages)
        elif args.command == "evaluate":
            _evaluate(args, stages)
        elif args.command == "rollback":
            with _publisher(settings) as publisher, publisher.hold(args.wait_lock):
                version = publisher.rollback()
            print(f"rolled back: version {version} is live")
        elif args.command == "promote":
            with _publisher(settings) as publisher, publisher.hold(args.wait_lock):
                version = publisher.promote()
            print(f"promoted: version {version} is live; the A/B test ended")
        elif args.command == "abort":
            with _publisher(settings) as publisher, publisher.hold(args.wait_lock):
                version = publisher.abort()
            print(f"aborted: candidate {version} is no longer served; the A/B test ended")
        elif args.command == "status":
            with _publisher(settings) as publisher:
                live, prev = publisher.live_version(), publisher.previous_version()
                candidate, test = publisher.candidate_version(), publisher.experiment()
                meta = publisher.meta(live) if live else None
            status = {
                "live": live,
                "previous": prev,
                "candidate": candidate,
                "experiment": None if test is None else orjson.loads(test.encode()),
                "live_meta": meta,
            }
            print(orjson.dumps(status, option=orjson.OPT_INDENT_2).decode())
    except TrainingError as exc:
        print(f"error: {redact_url(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except MemoryError:
        # The estimates missed: still a clean refusal, never a kill by the kernel.
        print(
            f"error: out of memory within the budget of {memory.human(stages.budget.limit)}: "
            "raise --memory-budget and the pod's memory limit",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    return EXIT_OK
