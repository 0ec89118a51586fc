"""``recsvc stock``, ``recsvc catalog`` and ``recsvc erase``: the admin API's changes from files."""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from pathlib import Path

from recsvc import model as lay
from recsvc.answers import export
from recsvc.cli.common import EXIT_BAD_INPUT, actor, fail, model_store, store_error
from recsvc.config import Settings
from recsvc.errors import NoLiveModelError, StoreUnavailableError
from recsvc.store.embedded import EmbeddedRedisError


def run_stock(args: argparse.Namespace, settings: Settings) -> int:
    try:
        changes = stock_changes(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        unknown = asyncio.run(apply_stock(settings, changes))
    except (StoreUnavailableError, NoLiveModelError, EmbeddedRedisError) as exc:
        return store_error(exc)
    for item in unknown:
        print(f"warning: item {item} is not in the live model; left unchanged", file=sys.stderr)
    print(f"stock: updated={len(changes) - len(unknown)} unknown={len(unknown)}")
    return 0 if len(unknown) < len(changes) else 2


MAX_PRICE = 1e9


def stock_facts(row: dict[str, str], n: int) -> dict[str, object]:
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
                change = stock_facts(row, n)
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


CATALOG_COLUMNS = (
    "title", "category", "price", "available", "brand", "image_url", "url", "currency",
)  # fmt: skip


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
                c: row[c]
                for c in ("title", "category", "brand", "image_url", "url", "currency")
                if row.get(c)
            }
            change.update(stock_facts(row, n))
            changes[item] = change
    if not changes:
        raise ValueError(f"{path} holds no items")
    return changes


def run_catalog(args: argparse.Namespace, settings: Settings) -> int:
    try:
        changes = catalog_changes(args.file) if args.file is not None else {}
    except ValueError as exc:
        return fail(EXIT_BAD_INPUT, str(exc))
    if not changes and not args.delete:
        return fail(EXIT_BAD_INPUT, "nothing to change: give --file, --delete, or both")

    async def run() -> tuple[list[str], str | None]:
        async with model_store(settings) as store:
            new: list[str] = []
            if changes:
                _, new = await store.admin.put_items(changes, actor())
            if args.delete:
                await store.admin.delete_items(args.delete, actor())
            return new, None

    try:
        new, _ = asyncio.run(run())
    except (StoreUnavailableError, NoLiveModelError, EmbeddedRedisError) as exc:
        return store_error(exc)
    print(f"catalog: updated={len(changes)} new={len(new)} deleted={len(args.delete)}")
    return 0


def run_erase(args: argparse.Namespace, settings: Settings) -> int:
    ids = list(args.customer)
    if args.file is not None:
        if not args.file.is_file():
            return fail(EXIT_BAD_INPUT, f"customer file {args.file} not found")
        ids += list(export.iter_ids(args.file))
    if not ids:
        return fail(EXIT_BAD_INPUT, "say which customers: --customer ID or --file")

    async def run() -> list[str]:
        async with model_store(settings) as store:
            return await store.admin.erase_customers(ids, actor())

    try:
        versions = asyncio.run(run())
    except (StoreUnavailableError, EmbeddedRedisError) as exc:
        return store_error(exc)
    print(f"erased: customers={len(ids)} versions={','.join(versions) or '(none held them)'}")
    return 0


async def apply_stock(settings: Settings, changes: dict[str, dict[str, object]]) -> list[str]:
    async with model_store(settings) as store:
        _, unknown = await store.admin.set_stock(changes)
        return unknown
