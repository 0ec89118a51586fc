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
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from recsvc.answers import export
from recsvc.api.schemas import MAX_K
from recsvc.cli.admin import CATALOG_COLUMNS, run_catalog, run_erase, run_stock
from recsvc.cli.common import EXIT_BAD_INPUT, TRAINER_COMMANDS, fail
from recsvc.cli.exporting import run_export
from recsvc.cli.reports import run_report
from recsvc.cli.samples import write_sample, write_shop
from recsvc.cli.serve import (
    demo_env_lines,
    demo_settings,
    embedded_forbidden,
    print_demo_env,
    run_cluster,
    save_demo_env,
    serve,
    train_demo,
)
from recsvc.config import PREFIX_HELP, Settings, SettingsError, load_settings, with_prefix
from recsvc.helptext import HelpFormatter, plain


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsvc", description=plain(__doc__), formatter_class=HelpFormatter
    )
    parser.add_argument("--prefix", help=PREFIX_HELP)
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
        if name == "demo":
            p.add_argument(
                "--env",
                action="store_true",
                help="print the running demo's admin and ingest tokens as export lines "
                '(eval "$(recsvc demo --env)" in another shell) and exit',
            )
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
    for name, command in sub.choices.items():
        if name not in TRAINER_COMMANDS:  # the trainer's parser has its own --prefix
            # Also after the command; SUPPRESS keeps a --prefix given before it.
            command.add_argument("--prefix", default=argparse.SUPPRESS, help=PREFIX_HELP)
    return parser


def _leading_prefix(argv: list[str]) -> tuple[str | None, list[str]]:
    """A ``--prefix`` given before the command, and the arguments without it."""
    if argv[:1] == ["--prefix"] and len(argv) > 1:
        return argv[1], argv[2:]
    if argv and argv[0].startswith("--prefix="):
        return argv[0].split("=", 1)[1], argv[1:]
    return None, argv


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    try:
        return _main(argv, settings)
    except SettingsError as exc:
        return fail(EXIT_BAD_INPUT, str(exc))


def _main(argv: Sequence[str] | None, settings: Settings | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prefix, rest = _leading_prefix(argv)
    if rest and rest[0] in TRAINER_COMMANDS:
        from training.cli.main import main as train_main

        return train_main(argv, settings, prog="recsvc")
    args = _parser().parse_args(argv)
    prefix = getattr(args, "prefix", None)
    if settings is not None or prefix is not None:
        settings = with_prefix(settings or load_settings(), prefix)
    if args.command == "sample":
        if args.platform:
            return write_shop(args.platform, args.out or Path("shop"))
        return write_sample(args.out or Path("purchases.csv.gz"))
    if args.command == "stock":
        return run_stock(args, settings or load_settings())
    if args.command == "catalog":
        return run_catalog(args, settings or load_settings())
    if args.command == "erase":
        return run_erase(args, settings or load_settings())
    if args.command == "export":
        return run_export(args, settings or load_settings())
    if args.command == "report":
        return run_report(args, settings or load_settings())
    if args.command == "cluster":
        return run_cluster(args, settings or load_settings())
    overrides: dict[str, object] = {
        k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None
    }
    settings = (settings or load_settings()).model_copy(update=overrides)
    if args.command == "demo" and args.env:
        return print_demo_env(demo_settings(settings))
    if args.command == "demo":
        settings = demo_settings(settings)
    refused = embedded_forbidden(settings)
    if refused is not None:
        return refused

    if args.command == "demo":
        code = train_demo(settings)
        if code:
            return code
        base_url = f"http://{settings.host}:{settings.port}"
        saved = save_demo_env(settings)
        exports = "\n".join(f"  {line}" for line in demo_env_lines(settings))
        print(
            f"\nServing the demo model (key prefix {settings.key_prefix}). Pages on "
            "localhost and 127.0.0.1 (any port) may call it. Its admin and ingest tokens, "
            f"for the README's admin and event calls (also in {saved}: "
            'eval "$(recsvc demo --env)" in another shell):\n'
            f"{exports}\n"
            "Try:\n"
            f"  curl -s {base_url}/v1/recommendations/cart -H 'content-type: application/json' \\\n"
            '       -d \'{"items": ["85123A", "71053"], "k": 5}\'\n'
            f"  curl -s {base_url}/v1/items/85123A/similar?k=5\n"
            f"  curl -s {base_url}/v1/customers/17420/recommendations?k=5\n"
            f"  open {base_url}/v1/model/report?format=html for the evaluation report\n"
            f"  open {base_url}/docs for the API\n",
            file=sys.stderr,
            flush=True,
        )
    serve(settings)
    return 0
