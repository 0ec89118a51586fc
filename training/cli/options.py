"""The trainer's options: the data flags shared by ``train`` and ``evaluate`` (columns,
presets, parsing, cleaning, methods, budgets) and what they become (``TrainConfig``, the
engine, ``EvalOptions``)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import pandas as pd

from recsvc.answers.picks import PICKS_PER_CUSTOMER
from training.engines import ENGINES, LOCAL, Engine
from training.engines.local import DEFAULT_PICKS, TrainConfig
from training.errors import (
    InputError,
)
from training.evaluation.assessment import EvalOptions
from training.neighbours import spec
from training.neighbours.registry import METHODS, default_method, method_for
from training.stages import ingest, matrices, parsing
from training.stages.als import AlsParams
from training.stages.catalog import CATALOG_PRESETS, CatalogColumns

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


def data_options() -> argparse.ArgumentParser:
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
        type=delimiter,
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
        "--method",
        choices=sorted(METHODS),
        default=None,
        help=f"how neighbours are computed (default: {default_method(spec.LOCAL)}; "
        f"{default_method(spec.SPARK)} with --engine spark, the one method it runs)",
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
    m.add_argument(
        "--picks-per-customer",
        type=int,
        default=PICKS_PER_CUSTOMER,
        help="suggestions ranked in the trainer and stored with each customer's history, "
        "served with one read and no ranking (0: the service ranks every customer)",
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
        type=timestamp,
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


def share(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"an A/B share must be between 0 and 1, got {text}")
    return value


def timestamp(text: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date: {text!r}") from exc
    return stamp if stamp.tzinfo else stamp.tz_localize("UTC")


def columns_of(args: argparse.Namespace) -> ingest.Columns:
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
    "currency", "inventory", "status", "sale_price",
)  # fmt: skip


def catalog_columns_of(args: argparse.Namespace) -> CatalogColumns | None:
    """The catalog mapping the flags give, on top of the preset's (or the plain one)."""
    given = {n: getattr(args, f"catalog_{n}_col") for n in CATALOG_FIELDS}
    given = {n: v for n, v in given.items() if v}
    if not given:
        return None
    base = CATALOG_PRESETS.get(args.preset or "", CatalogColumns())
    required = tuple(f for f in ("item_id", "title", "price") if f in base.required)
    return replace(base, **given, required=required)


def delimiter(text: str) -> str:
    try:
        return parsing.delimiter_option(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def cancelled_prefix(args: argparse.Namespace) -> str | None:
    if args.cancelled_prefix is not None:
        return str(args.cancelled_prefix) or None
    return ingest.PRESET_CANCELLED_PREFIXES.get(args.preset or "")


def non_product_pattern(args: argparse.Namespace) -> str | None:
    if args.non_product_pattern is not None:
        return str(args.non_product_pattern) or None
    return ingest.PRESET_NON_PRODUCT_PATTERNS.get(
        args.preset or "", ingest.DEFAULT_NON_PRODUCT_PATTERN
    )


def method_of(args: argparse.Namespace) -> str:
    """The neighbour method asked for, or the engine's default; one the engine cannot run
    is bad input (exit 2), never silently replaced."""
    method = args.method or default_method(args.engine)
    try:
        return method_for(method, args.engine).name
    except ValueError as exc:
        raise InputError(str(exc)) from exc


def config_of(args: argparse.Namespace) -> TrainConfig:
    for flag, value, low in (
        ("--factors", args.factors, 1),
        ("--iterations", args.iterations, 1),
        ("--neighbours", args.neighbours, 1),
        ("--negatives", args.negatives, 0),
        ("--history-items", args.history_items, 0),
        ("--picks-per-customer", args.picks_per_customer, 0),
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
        columns=columns_of(args),
        cleaning=ingest.CleaningRules(
            cancelled_order_prefix=cancelled_prefix(args),
            date_format=args.date_format,
            non_product_pattern=non_product_pattern(args),
            non_product_items=frozenset(args.non_product),
            drop_duplicates=not args.keep_duplicates,
        ),
        weighting=args.weighting,
        als=AlsParams(args.factors, args.regularization, args.alpha, args.iterations, args.seed),
        method=method_of(args),
        top_n=args.neighbours,
        ease_lambda=args.ease_lambda,
        als_weight=args.als_weight,
        recency_half_life_days=args.recency_half_life,
        negatives=0 if args.engine == "spark" else args.negatives,
        repurchase_bonus=args.repurchase_bonus,
        repurchase_scale=args.repurchase_scale,
        history_items=args.history_items,
        picks=replace(DEFAULT_PICKS, n=args.picks_per_customer),
        catalog=args.catalog,
        delimiter=args.delimiter,
        catalog_columns=catalog_columns_of(args),
        preset=args.preset,
    )


def engine_of(args: argparse.Namespace) -> Engine:
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


def eval_options(args: argparse.Namespace, default_budget: float) -> EvalOptions:
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
