"""recsvc: serve the live model, train on the bundled sample and serve (demo), export
suggestions for many customers (export), change live stock (stock), report what the
suggestions sold (report sales), and train, evaluate, roll back, run A/B tests or show the
live model (train, evaluate, rollback, promote, abort, status: the trainer's own commands,
as in python -m training).

Exit codes: 0 success, 1 unexpected failure, 2 bad input or configuration, 3 Redis
unreachable, 7 no live model (the trainer's commands keep the trainer's codes: 4 locked,
5 refused by the quality gate, 6 Redis out of memory, 7 nothing to roll back, promote or
abort)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import getpass
import gzip
import shutil
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from uvicorn.supervisors import Multiprocess

from recsvc import model as lay
from recsvc.answers import export
from recsvc.api.app import create_app
from recsvc.api.protocol import ServiceConfig
from recsvc.api.schemas import MAX_K
from recsvc.config import Settings, SettingsError, load_settings
from recsvc.errors import NoLiveModelError, StoreUnavailableError
from recsvc.experiments import sales
from recsvc.helptext import HelpFormatter, plain
from recsvc.store import ModelStore
from recsvc.store import backend as storage
from recsvc.store.embedded import EmbeddedRedisError, EmbeddedRedisForbiddenError, redis_url_for

SAMPLE = "online_retail_sample.csv.gz"
EXIT_BAD_INPUT = 2
EXIT_REDIS_UNAVAILABLE = 3
EXIT_NO_MODEL = 7
TRAINER_COMMANDS = ("train", "evaluate", "rollback", "promote", "abort", "status")
"""Commands ``recsvc`` hands to the trainer's CLI (``python -m training``) as they are."""
DEMO_PREFIX_SUFFIX = "-demo"
"""The demo keeps its model under its own key prefix, so it never meets (nor is gated
against) a model of the store's own data in the same Redis."""


def sample_path() -> Path:
    return Path(str(resources.files("recsvc") / "data" / SAMPLE))


def _serve(settings: Settings) -> None:
    # The request-head limits travel in uvicorn's config, which every worker is handed.
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": False,
    }
    if settings.workers > 1:
        # Several workers need an importable factory; each reads the same environment.
        config = ServiceConfig(
            "recsvc.api.app:app_from_environment",
            factory=True,
            workers=settings.workers,
            head_limits=settings.head_limits,
            **options,
        )
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        config = ServiceConfig(create_app(settings), head_limits=settings.head_limits, **options)
        uvicorn.Server(config).run()


def _fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _store_error(exc: Exception, kept: str = "") -> int:
    """The exit code and message of a failure to reach the live model."""
    if isinstance(exc, EmbeddedRedisForbiddenError):
        return _fail(EXIT_BAD_INPUT, str(exc))
    if isinstance(exc, NoLiveModelError):
        return _fail(EXIT_NO_MODEL, f"{exc}: train one first (recsvc train)")
    return _fail(EXIT_REDIS_UNAVAILABLE, f"{exc}{kept}")


SUFFIX_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


def _export(args: argparse.Namespace, settings: Settings) -> int:
    fmt = args.format or SUFFIX_FORMATS.get(args.out.suffix.lower())
    if fmt is None:
        return _fail(
            EXIT_BAD_INPUT,
            f"cannot tell the format of {args.out.name!r}: name it .jsonl or .csv, "
            f"or say --format ({' or '.join(export.FORMATS)})",
        )
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
        return _store_error(exc, "; rows written so far are kept, rerun with --resume to go on")
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
        return _store_error(exc)
    for item in unknown:
        print(f"warning: item {item} is not in the live model; left unchanged", file=sys.stderr)
    print(f"stock: updated={len(changes) - len(unknown)} unknown={len(unknown)}")
    return 0 if len(unknown) < len(changes) else 2


MAX_PRICE = 1e9


def _stock_facts(row: dict[str, str], n: int) -> dict[str, object]:
    """``available`` and ``price`` of a CSV row (line ``n``), as given; ValueError says
    what is wrong with them."""
    facts: dict[str, object] = {}
    if row.get("available"):
        flag = row["available"].lower()
        if flag not in {"true", "false", "1", "0", "yes", "no"}:
            raise ValueError(f"line {n}: available must be true or false")
        facts["available"] = flag in {"true", "1", "yes"}
    if row.get("price"):
        try:
            price = float(row["price"])
        except ValueError:
            raise ValueError(f"line {n}: price {row['price']!r} is not a number") from None
        if not 0 <= price <= MAX_PRICE:
            raise ValueError(f"line {n}: price must be between 0 and {MAX_PRICE:g}")
        facts["price"] = price
    return facts


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
                change = _stock_facts(row, n)
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
    async with _model_store(settings) as store:
        _, unknown = await store.admin.set_stock(changes)
        return unknown


@asynccontextmanager
async def _model_store(settings: Settings) -> AsyncIterator[ModelStore]:
    """The live model's store, for a command (one client, closed after)."""
    with redis_url_for(
        settings.redis_url, settings.data_dir, allow_embedded=settings.allow_embedded_redis
    ) as url:
        client = storage.async_client(
            url, settings.redis_cluster, settings.redis_timeout_s, blocking=False
        )
        try:
            yield ModelStore(client, settings.layout)
        finally:
            await client.aclose()


CATALOG_COLUMNS = ("title", "category", "price", "available", "brand", "image_url", "url")


def catalog_changes(path: Path) -> dict[str, dict[str, object]]:
    """Catalog facts from a CSV (item_id and any of ``CATALOG_COLUMNS``); ValueError says
    which line is wrong."""
    if not path.is_file():
        raise ValueError(f"catalog file {path} not found")
    changes: dict[str, dict[str, object]] = {}
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = {c.strip().lower() for c in reader.fieldnames or []}
        if "item_id" not in cols or not cols & set(CATALOG_COLUMNS):
            raise ValueError(
                f"the catalog file needs item_id and any of {', '.join(CATALOG_COLUMNS)}"
            )
        for n, row in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            item = row.get("item_id", "")
            if not item or not lay.valid_id(item, lay.MAX_ITEM_ID_LENGTH):
                raise ValueError(f"line {n}: item_id {item!r} is not a valid id")
            change: dict[str, object] = {
                c: row[c] for c in ("title", "category", "brand", "image_url", "url") if row.get(c)
            }
            change.update(_stock_facts(row, n))
            changes[item] = change
    if not changes:
        raise ValueError(f"{path} holds no items")
    return changes


def _actor() -> str:
    return f"cli {getpass.getuser()}@{socket.gethostname()}"


def _catalog(args: argparse.Namespace, settings: Settings) -> int:
    try:
        changes = catalog_changes(args.file) if args.file is not None else {}
    except ValueError as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))
    if not changes and not args.delete:
        return _fail(EXIT_BAD_INPUT, "nothing to change: give --file, --delete, or both")

    async def run() -> tuple[list[str], str | None]:
        async with _model_store(settings) as store:
            new: list[str] = []
            if changes:
                _, new = await store.admin.put_items(changes, _actor())
            if args.delete:
                await store.admin.delete_items(args.delete, _actor())
            return new, None

    try:
        new, _ = asyncio.run(run())
    except (StoreUnavailableError, NoLiveModelError, EmbeddedRedisError) as exc:
        return _store_error(exc)
    print(f"catalog: updated={len(changes)} new={len(new)} deleted={len(args.delete)}")
    return 0


def _erase(args: argparse.Namespace, settings: Settings) -> int:
    ids = list(args.customer)
    if args.file is not None:
        if not args.file.is_file():
            return _fail(EXIT_BAD_INPUT, f"customer file {args.file} not found")
        ids += list(export.iter_ids(args.file))
    if not ids:
        return _fail(EXIT_BAD_INPUT, "say which customers: --customer ID or --file")

    async def run() -> list[str]:
        async with _model_store(settings) as store:
            return await store.admin.erase_customers(ids, _actor())

    try:
        versions = asyncio.run(run())
    except (StoreUnavailableError, EmbeddedRedisError) as exc:
        return _store_error(exc)
    print(f"erased: customers={len(ids)} versions={','.join(versions) or '(none held them)'}")
    return 0


def _report(args: argparse.Namespace, settings: Settings) -> int:
    today = datetime.now(UTC).date()
    until = args.until or today
    since = args.since or until - timedelta(days=29)
    if since > until:
        return _fail(EXIT_BAD_INPUT, f"--since {since} is after --until {until}")
    if (until - since).days >= lay.SALES_DAYS_KEPT:
        return _fail(
            EXIT_BAD_INPUT, f"at most {lay.SALES_DAYS_KEPT} days are kept: choose a later --since"
        )

    async def run() -> sales.SalesReport:
        with redis_url_for(
            settings.redis_url, settings.data_dir, allow_embedded=settings.allow_embedded_redis
        ) as url:
            client = storage.async_client(
                url, settings.redis_cluster, settings.redis_timeout_s, blocking=False
            )
            try:
                return await sales.read(client, settings.layout, since, until)
            finally:
                await client.aclose()

    try:
        report = asyncio.run(run())
    except (StoreUnavailableError, EmbeddedRedisError) as exc:
        return _store_error(exc)
    try:
        if args.html is not None:
            args.html.write_text(report.html(), encoding="utf-8")
        if args.json is not None:
            args.json.write_bytes(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2))
    except OSError as exc:
        return _fail(EXIT_BAD_INPUT, f"cannot write the report: {exc}")
    print(report.text())
    return 0


def _write_sample(out: Path) -> int:
    """Writes the bundled purchase sample (the demo's data) where a user can train on it."""
    if out.exists():
        return _fail(EXIT_BAD_INPUT, f"{out} exists; choose another --out or remove it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".gz":
            shutil.copyfile(sample_path(), out)
        else:
            with gzip.open(sample_path(), "rb") as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
    except OSError as exc:
        return _fail(EXIT_BAD_INPUT, f"cannot write {out}: {exc}")
    print(
        f"wrote {out}: 59,985 purchase lines of the UCI Online Retail data set "
        "(Chen, 2015, CC BY 4.0); train on it with --preset online-retail"
    )
    return 0


def _write_shop(platform: str, out: Path) -> int:
    """A generated shop's exports in ``platform``'s format, in the directory ``out``."""
    from training.samples.shops import Shop, write_orders, write_products

    orders, products = out / "orders_export.csv", out / "products_export.csv"
    for path in (orders, products):
        if path.exists():
            return _fail(EXIT_BAD_INPUT, f"{path} exists; choose another --out or remove it")
    try:
        out.mkdir(parents=True, exist_ok=True)
        shop = Shop()
        write_orders(shop, platform, orders)
        write_products(shop, platform, products)
    except OSError as exc:
        return _fail(EXIT_BAD_INPUT, f"cannot write to {out}: {exc}")
    print(
        f"wrote {orders} ({len(shop.lines):,} order lines, refunds and cancellations "
        f"included) and {products} ({len(shop.products)} products), as {platform} exports "
        f"them; train with --preset {platform}"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsvc", description=plain(__doc__), formatter_class=HelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (
        ("serve", "serve the live model"),
        (
            "demo",
            "train on the bundled Online Retail sample (under its own key prefix), then serve",
        ),
    ):
        p = sub.add_parser(name, help=text, description=text, formatter_class=HelpFormatter)
        p.add_argument("--host", help="where to listen (default: RECSVC_HOST or 127.0.0.1)")
        p.add_argument("--port", type=int, help="port (default: RECSVC_PORT or 8000)")
    for name, text in (
        ("train", "train, evaluate, gate and publish a new version"),
        ("evaluate", "score against baselines on a temporal holdout, write the report"),
        ("rollback", "make the previous version live again"),
        ("promote", "end the A/B test: its candidate becomes live"),
        ("abort", "end the A/B test: the live version stays"),
        ("status", "show the live, previous and candidate versions and the A/B test"),
    ):
        # Parsed by the trainer's own CLI: `recsvc train --help` shows its options.
        sub.add_parser(name, help=text, add_help=False)
    cl = sub.add_parser(
        "cluster",
        help="start or stop a local Redis Cluster of the bundled redis-server (to try the "
        "cluster backend on one machine)",
        formatter_class=HelpFormatter,
    )
    cl.add_argument("action", choices=("start", "stop"))
    cl.add_argument("--port", type=int, default=7000, help="the first node's port")
    cl.add_argument("--masters", type=int, default=3, help="how many masters")
    cl.add_argument(
        "--dir",
        type=Path,
        help="where the nodes keep their files (default: cluster/ in RECSVC_DATA_DIR)",
    )
    x = sub.add_parser(
        "export",
        help="write suggestions for many customers (JSON Lines or CSV), for e-mail",
        description=plain(export.__doc__),
        formatter_class=HelpFormatter,
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
        "--as-of",
        type=date.fromisoformat,
        help="today, for audiences (default: the last day in the model's data)",
    )
    x.add_argument("--out", type=Path, required=True, help="the file to write")
    x.add_argument(
        "--format",
        choices=export.FORMATS,
        help="default: from --out's suffix (.jsonl, .ndjson, .json or .csv)",
    )
    x.add_argument("-k", type=int, default=10, help=f"suggestions per customer (1 to {MAX_K})")
    x.add_argument(
        "--include-purchased", action="store_true", help="may suggest items bought before"
    )
    x.add_argument("--resume", action="store_true", help="skip customers already in --out")
    st = sub.add_parser(
        "stock",
        help="mark items (un)available or reprice them in the live model, until retraining",
        formatter_class=HelpFormatter,
    )
    st.add_argument("--item", action="append", default=[], help="an item id (repeatable)")
    avail = st.add_mutually_exclusive_group()
    avail.add_argument(
        "--available", dest="available", action="store_const", const=True, help="in stock"
    )
    avail.add_argument(
        "--unavailable", dest="available", action="store_const", const=False, help="sold out"
    )
    st.add_argument("--price", type=float, help="the new price")
    st.add_argument(
        "--file", type=Path, help="CSV with item_id and available and/or price columns, in bulk"
    )
    ca = sub.add_parser(
        "catalog",
        help="add or change catalog items, or delete items, between trainings (audited)",
        description="New items are suggested beside their category's best suggestion until "
        "a training knows them; deleted items are never suggested until put back.",
        formatter_class=HelpFormatter,
    )
    ca.add_argument(
        "--file",
        type=Path,
        help=f"CSV of item_id and any of {', '.join(CATALOG_COLUMNS)} (default: none)",
    )
    ca.add_argument(
        "--delete", action="append", default=[], metavar="ITEM", help="an item id (repeatable)"
    )
    er = sub.add_parser(
        "erase",
        help="erase customers' stored histories from every version (privacy requests; audited)",
        formatter_class=HelpFormatter,
    )
    er.add_argument(
        "--customer", action="append", default=[], metavar="ID", help="a customer id (repeatable)"
    )
    er.add_argument("--file", type=Path, help="a file of customer ids, one per line")
    rp = sub.add_parser(
        "report",
        help="what the suggestions sold (report sales): by version, A/B arm, slot and position",
        formatter_class=HelpFormatter,
    )
    what = rp.add_subparsers(dest="report", required=True, metavar="REPORT")
    rs = what.add_parser(
        "sales",
        help="orders and revenue credited to recsvc's answers, and each A/B test's arms "
        "compared per answer with a 95%% interval",
        formatter_class=HelpFormatter,
    )
    rs.add_argument(
        "--since",
        type=date.fromisoformat,
        help="first day, UTC (default: 29 days before --until)",
    )
    rs.add_argument("--until", type=date.fromisoformat, help="last day, UTC (default: today)")
    rs.add_argument("--html", type=Path, help="also write the report as an HTML page, with charts")
    rs.add_argument("--json", type=Path, help="also write the report as JSON")
    sa = sub.add_parser(
        "sample",
        help="write the bundled purchase sample (the demo's data) to a file, to train on",
        formatter_class=HelpFormatter,
    )
    sa.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write it (.csv.gz as shipped, or .csv; default purchases.csv.gz); "
        "with --platform, a directory",
    )
    sa.add_argument(
        "--platform",
        choices=("shopify", "woocommerce", "magento"),
        help="instead, a generated coffee shop's orders and products exports as that "
        "platform writes them (orders_export.csv, products_export.csv), to try the "
        "store-export path on",
    )
    return parser


def demo_settings(settings: Settings) -> Settings:
    """The demo's own key prefix: it never gates against, nor replaces, the store's model."""
    return settings.model_copy(update={"key_prefix": settings.key_prefix + DEMO_PREFIX_SUFFIX})


def train_demo(settings: Settings) -> int:
    """Trains the bundled sample into ``settings`` (the demo's): the trainer's exit code."""
    from training.cli.main import main as train_main

    return train_main(
        ["train", "--purchases", str(sample_path()), "--preset", "online-retail"], settings
    )


def _embedded_forbidden(settings: Settings) -> int | None:
    if settings.redis_url or settings.allow_embedded_redis:
        return None
    return _fail(
        EXIT_BAD_INPUT,
        "REDIS_URL is not set and the embedded Redis is not allowed here "
        "(RECSVC_ALLOW_EMBEDDED_REDIS=false): set REDIS_URL to the model's Redis",
    )


def _cluster(args: argparse.Namespace, settings: Settings) -> int:
    from recsvc.store import localcluster

    try:
        if args.action == "stop":
            n = localcluster.stop(args.port, args.masters)
            print(f"stopped {n} node(s) on ports {args.port}..{args.port + args.masters - 1}")
            return 0
        urls = localcluster.start(
            args.dir or settings.data_dir / "cluster", args.port, args.masters
        )
    except (localcluster.LocalClusterError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"a {len(urls)}-master Redis Cluster answers on {', '.join(urls)}; use it with:")
    print(f"  export RECSVC_REDIS_CLUSTER=true REDIS_URL={urls[0]}")
    return 0


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    try:
        return _main(argv, settings)
    except SettingsError as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))


def _main(argv: Sequence[str] | None, settings: Settings | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TRAINER_COMMANDS:
        from training.cli.main import main as train_main

        return train_main(argv, settings, prog="recsvc")
    args = _parser().parse_args(argv)
    if args.command == "sample":
        if args.platform:
            return _write_shop(args.platform, args.out or Path("shop"))
        return _write_sample(args.out or Path("purchases.csv.gz"))
    if args.command == "stock":
        return _stock(args, settings or load_settings())
    if args.command == "catalog":
        return _catalog(args, settings or load_settings())
    if args.command == "erase":
        return _erase(args, settings or load_settings())
    if args.command == "export":
        return _export(args, settings or load_settings())
    if args.command == "report":
        return _report(args, settings or load_settings())
    if args.command == "cluster":
        return _cluster(args, settings or load_settings())
    overrides: dict[str, object] = {
        k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None
    }
    settings = (settings or load_settings()).model_copy(update=overrides)
    if args.command == "demo":
        settings = demo_settings(settings)
    refused = _embedded_forbidden(settings)
    if refused is not None:
        return refused

    if args.command == "demo":
        code = train_demo(settings)
        if code:
            return code
        base_url = f"http://{settings.host}:{settings.port}"
        print(
            f"\nServing the demo model (key prefix {settings.key_prefix}). Try:\n"
            f"  curl -s {base_url}/v1/recommendations/cart -H 'content-type: application/json' \\\n"
            '       -d \'{"items": ["85123A", "71053"], "k": 5}\'\n'
            f"  curl -s {base_url}/v1/items/85123A/similar?k=5\n"
            f"  curl -s {base_url}/v1/customers/17420/recommendations?k=5\n"
            f"  open {base_url}/v1/model/report?format=html for the evaluation report\n"
            f"  open {base_url}/docs for the API\n",
            file=sys.stderr,
            flush=True,
        )
    _serve(settings)
    return 0
