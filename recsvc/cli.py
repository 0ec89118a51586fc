"""``recsvc``: serve the live model, train on the bundled sample and serve (``demo``),
or export suggestions for many customers (``export``)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from collections.abc import Sequence
from datetime import date
from importlib import resources
from pathlib import Path

import redis.asyncio as aioredis
import uvicorn

from recsvc import export
from recsvc.app import create_app
from recsvc.config import Settings
from recsvc.embedded import EmbeddedRedisError, redis_url_for
from recsvc.errors import NoLiveModelError, StoreUnavailableError
from recsvc.layout import Layout
from recsvc.protocol import HTTP_PROTOCOL
from recsvc.schemas import MAX_K
from recsvc.store import ModelStore

SAMPLE = "online_retail_sample.csv.gz"


def sample_path() -> Path:
    return Path(str(resources.files("recsvc") / "data" / SAMPLE))


def _serve(settings: Settings) -> None:
    if settings.workers > 1:
        # Several workers need an importable factory; each reads the same environment.
        uvicorn.run(
            "recsvc.app:app_from_environment",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            access_log=False,
            http=HTTP_PROTOCOL,
        )
    else:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=False,
            http=HTTP_PROTOCOL,
        )


def _export(args: argparse.Namespace, settings: Settings) -> int:
    fmt = args.format or ("csv" if args.out.suffix.lower() == ".csv" else "jsonl")
    if not 1 <= args.k <= MAX_K:
        print(f"error: -k must be between 1 and {MAX_K}", file=sys.stderr)
        return 2
    audience = None
    if args.audience == "post-purchase":
        audience = export.Audience(args.days, args.days)
    elif args.audience == "win-back":
        audience = export.Audience(args.min_days, args.max_days)
    if args.customers is not None and not args.customers.is_file():
        print(f"error: customer file {args.customers} not found", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(
            export.run(
                settings,
                args.out,
                fmt=fmt,
                customers=export.iter_ids(args.customers) if args.customers else None,
                audience=audience,
                as_of=args.as_of,
                k=args.k,
                exclude_purchased=not args.include_purchased,
                resume=args.resume,
                progress=sys.stderr,
            )
        )
    except (StoreUnavailableError, NoLiveModelError, EmbeddedRedisError) as exc:
        kept = "; rows written so far are kept, rerun with --resume to go on"
        print(f"error: {exc}{kept}", file=sys.stderr)
        return 3
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc}", file=sys.stderr)
        return 2
    print(
        f"exported: customers={result.written} skipped={result.skipped} "
        f"seconds={result.seconds:.2f} per_second={result.per_second:.0f} out={args.out}"
    )
    return 0


def _stock(args: argparse.Namespace, settings: Settings) -> int:
    try:
        changes = stock_changes(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        unknown = asyncio.run(_apply_stock(settings, changes))
    except (StoreUnavailableError, NoLiveModelError, EmbeddedRedisError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    for item in unknown:
        print(f"warning: item {item} is not in the live model; left unchanged", file=sys.stderr)
    print(f"stock: updated={len(changes) - len(unknown)} unknown={len(unknown)}")
    return 0 if len(unknown) < len(changes) else 2


def stock_changes(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """The changes the flags or the file ask for; ValueError says what is wrong."""
    changes: dict[str, dict[str, object]] = {}
    if args.file is not None:
        if not args.file.is_file():
            raise ValueError(f"stock file {args.file} not found")
        with args.file.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            cols = {c.strip().lower() for c in reader.fieldnames or []}
            if "item_id" not in cols or not cols & {"available", "price"}:
                raise ValueError("the stock file needs item_id and available and/or price")
            for n, row in enumerate(reader, start=2):
                row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
                change: dict[str, object] = {}
                if row.get("available"):
                    flag = row["available"].lower()
                    if flag not in {"true", "false", "1", "0", "yes", "no"}:
                        raise ValueError(f"line {n}: available must be true or false")
                    change["available"] = flag in {"true", "1", "yes"}
                if row.get("price"):
                    try:
                        price = float(row["price"])
                    except ValueError:
                        raise ValueError(
                            f"line {n}: price {row['price']!r} is not a number"
                        ) from None
                    if price < 0:
                        raise ValueError(f"line {n}: price must not be negative")
                    change["price"] = price
                if row.get("item_id") and change:
                    changes[row["item_id"]] = change
    for item in args.item:
        change = {}
        if args.available is not None:
            change["available"] = args.available
        if args.price is not None:
            if args.price < 0:
                raise ValueError("--price must not be negative")
            change["price"] = args.price
        if not change:
            raise ValueError("say --available, --unavailable or --price for --item")
        changes[item] = change
    if not changes:
        raise ValueError("nothing to change: give --item with a change, or --file")
    return changes


async def _apply_stock(settings: Settings, changes: dict[str, dict[str, object]]) -> list[str]:
    with redis_url_for(settings.redis_url, settings.data_dir) as url:
        client = aioredis.Redis.from_url(url, socket_timeout=settings.redis_timeout_s)
        try:
            _, unknown = await ModelStore(client, Layout(settings.key_prefix)).set_stock(changes)
            return unknown
        finally:
            await client.aclose()


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recsvc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("serve", "serve the live model"),
        ("demo", "train on the bundled Online Retail sample, then serve"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--host", help="default: RECSVC_HOST or 127.0.0.1")
        p.add_argument("--port", type=int, help="default: RECSVC_PORT or 8000")
    x = sub.add_parser(
        "export",
        help="write suggestions for many customers (JSON Lines or CSV), for e-mail",
        description=export.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    who = x.add_mutually_exclusive_group(required=True)
    who.add_argument("--customers", type=Path, help="file of customer ids, one per line")
    who.add_argument(
        "--audience",
        choices=("post-purchase", "win-back"),
        help="post-purchase: last purchase --days ago; win-back: --min-days ago or more",
    )
    x.add_argument("--days", type=int, default=7, help="post-purchase: days since last purchase")
    x.add_argument("--min-days", type=int, default=30, help="win-back: at least this many days")
    x.add_argument("--max-days", type=int, help="win-back: at most this many days")
    x.add_argument(
        "--as-of", type=date.fromisoformat, help="today for audiences (default: model's last day)"
    )
    x.add_argument("--out", type=Path, required=True)
    x.add_argument("--format", choices=export.FORMATS, help="default: from --out's suffix")
    x.add_argument("-k", type=int, default=10)
    x.add_argument(
        "--include-purchased", action="store_true", help="may suggest items bought before"
    )
    x.add_argument("--resume", action="store_true", help="skip customers already in --out")
    st = sub.add_parser(
        "stock",
        help="mark items (un)available or reprice them in the live model, until retraining",
    )
    st.add_argument("--item", action="append", default=[], help="an item id (repeatable)")
    avail = st.add_mutually_exclusive_group()
    avail.add_argument("--available", dest="available", action="store_const", const=True)
    avail.add_argument("--unavailable", dest="available", action="store_const", const=False)
    st.add_argument("--price", type=float)
    st.add_argument(
        "--file", type=Path, help="CSV with item_id and available and/or price columns, in bulk"
    )
    args = parser.parse_args(argv)
    if args.command == "stock":
        return _stock(args, settings or Settings())
    if args.command == "export":
        return _export(args, settings or Settings())
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = settings.model_copy(update=overrides) if settings else Settings(**overrides)

    if args.command == "demo":
        from training.cli import main as train_main

        code = train_main(
            ["train", "--purchases", str(sample_path()), "--preset", "online-retail"], settings
        )
        if code:
            return code
        base = f"http://{settings.host}:{settings.port}"
        print(
            "\nServing the demo model. Try:\n"
            f"  curl -s {base}/v1/recommendations/cart -H 'content-type: application/json' \\\n"
            '       -d \'{"items": ["85123A", "71053"], "k": 5}\'\n'
            f"  curl -s {base}/v1/items/85123A/similar?k=5\n"
            f"  curl -s {base}/v1/customers/17420/recommendations?k=5\n"
            f"  open {base}/v1/model/report?format=html for the evaluation report\n"
            f"  open {base}/docs for the API\n",
            file=sys.stderr,
            flush=True,
        )
    _serve(settings)
    return 0
