"""``python -m training``: train and publish, roll back, show status.

Exit codes (for cron): 0 success, 1 unexpected failure, 2 bad input, 3 Redis unreachable,
4 another trainer holds the lock, 5 refused by the quality gate.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import orjson
import redis

from recsvc.config import Settings
from recsvc.embedded import EmbeddedRedisError, redis_url_for
from recsvc.layout import Layout
from training import ingest, matrices
from training.errors import EXIT_OK, InputError, StoreUnavailableError, TrainingError
from training.model import AlsParams
from training.neighbours import DEFAULT_METHOD, METHODS
from training.pipeline import Stages, TrainConfig, train_and_publish
from training.publish import Publisher


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train on purchase lines and publish a new version")
    t.add_argument("--purchases", type=Path, required=True, help="CSV(.gz) or Parquet file")
    t.add_argument(
        "--preset", choices=sorted(ingest.PRESETS), help="column mapping of a known export"
    )
    cols = t.add_argument_group("columns (override the preset)")
    for name in ("customer", "item", "order", "quantity", "timestamp", "price", "description"):
        cols.add_argument(f"--{name}-col", dest=f"{name}_col", metavar="NAME")
    c = t.add_argument_group("cleaning")
    c.add_argument(
        "--cancelled-prefix",
        default="C",
        help="order ids starting with this are cancellations ('' to keep all)",
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
    m = t.add_argument_group("model")
    m.add_argument("--weighting", choices=matrices.WEIGHTINGS, default="bm25")
    m.add_argument("--factors", type=int, default=AlsParams.factors)
    m.add_argument("--regularization", type=float, default=AlsParams.regularization)
    m.add_argument("--alpha", type=float, default=AlsParams.alpha)
    m.add_argument("--iterations", type=int, default=AlsParams.iterations)
    m.add_argument("--seed", type=int, default=AlsParams.random_state)
    m.add_argument("--neighbours", type=int, default=50, help="neighbours kept per item")
    m.add_argument(
        "--method",
        choices=sorted(METHODS),
        default=DEFAULT_METHOD,
        help="how neighbours are computed",
    )
    m.add_argument("--ease-lambda", type=float, default=50.0)
    m.add_argument("--als-weight", type=float, default=0.1)
    t.add_argument("--dry-run", action="store_true", help="train and report, publish nothing")

    sub.add_parser("rollback", help="make the previous version live again")
    sub.add_parser("status", help="show the live and previous versions")
    return p


def _columns(args: argparse.Namespace) -> ingest.Columns:
    base = ingest.PRESETS[args.preset] if args.preset else None
    values: dict[str, str | None] = {}
    for name in ("customer", "item", "order", "quantity", "timestamp", "price", "description"):
        given = getattr(args, f"{name}_col")
        values[name] = given if given else (getattr(base, name) if base else None)
    customer, item = values.pop("customer"), values.pop("item")
    if not customer or not item:
        raise InputError(
            "name the customer and item columns (--customer-col, --item-col) or use --preset"
        )
    return ingest.Columns(customer, item, **values)


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
    ):
        if value < low:
            raise InputError(f"{flag} must be at least {low}, got {value}")
    for flag, fvalue in (
        ("--regularization", args.regularization),
        ("--alpha", args.alpha),
        ("--ease-lambda", args.ease_lambda),
        ("--als-weight", args.als_weight),
    ):
        if fvalue < 0:
            raise InputError(f"{flag} must not be negative, got {fvalue}")
    return TrainConfig(
        columns=_columns(args),
        cleaning=ingest.CleaningRules(
            cancelled_order_prefix=args.cancelled_prefix or None,
            non_product_pattern=_non_product_pattern(args),
            non_product_items=frozenset(args.non_product),
            drop_duplicates=not args.keep_duplicates,
        ),
        weighting=args.weighting,
        als=AlsParams(args.factors, args.regularization, args.alpha, args.iterations, args.seed),
        method=args.method,
        top_n=args.neighbours,
        ease_lambda=args.ease_lambda,
        als_weight=args.als_weight,
    )


@contextmanager
def _publisher(settings: Settings) -> Iterator[Publisher]:
    try:
        with redis_url_for(settings.redis_url, settings.data_dir) as url:
            client = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5)
            try:
                client.ping()
            except redis.RedisError as exc:
                raise StoreUnavailableError(f"redis at {url} did not answer: {exc}") from exc
            try:
                yield Publisher(client, Layout(settings.key_prefix))
            finally:
                client.close()
    except EmbeddedRedisError as exc:
        raise StoreUnavailableError(str(exc)) from exc


def _train(args: argparse.Namespace, settings: Settings, stages: Stages) -> None:
    config = _config(args)
    if args.dry_run:
        result = train_and_publish(args.purchases, config, None, stages)
    else:
        with _publisher(settings) as publisher:
            result = train_and_publish(args.purchases, config, publisher, stages)
    counts = result.payload.meta["counts"]
    seconds = " ".join(f"{k}={v:.2f}s" for k, v in stages.seconds.items())
    print(
        f"trained: rows_read={result.report.rows_read} rows_kept={result.report.rows_kept} "
        f"customers={counts['customers']} items={counts['items']} {seconds} "
        f"version={result.version or '(dry run, not published)'}"
    )


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = settings or Settings()
    stages = Stages()
    try:
        if args.command == "train":
            _train(args, settings, stages)
        elif args.command == "rollback":
            with _publisher(settings) as publisher:
                version = publisher.rollback()
            print(f"rolled back: version {version} is live")
        elif args.command == "status":
            with _publisher(settings) as publisher:
                live, prev = publisher.live_version(), publisher.previous_version()
                meta = publisher.meta(live) if live else None
            print(
                orjson.dumps(
                    {"live": live, "previous": prev, "live_meta": meta}, option=orjson.OPT_INDENT_2
                ).decode()
            )
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return EXIT_OK
