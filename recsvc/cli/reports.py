"""``recsvc report``: what recsvc's answers sold."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta

import orjson

from recsvc import model as lay
from recsvc.cli.common import EXIT_BAD_INPUT, fail, store_error
from recsvc.config import Settings
from recsvc.errors import StoreUnavailableError
from recsvc.experiments import sales
from recsvc.store import backend as storage
from recsvc.store.embedded import EmbeddedRedisError, redis_url_for


def run_report(args: argparse.Namespace, settings: Settings) -> int:
    today = datetime.now(UTC).date()
    until = args.until or today
    since = args.since or until - timedelta(days=29)
    if since > until:
        return fail(EXIT_BAD_INPUT, f"--since {since} is after --until {until}")
    if (until - since).days >= lay.SALES_DAYS_KEPT:
        return fail(
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
                backend = storage.async_storage(client, settings.layout)
                return await sales.read(backend, settings.layout, since, until)
            finally:
                await client.aclose()

    try:
        report = asyncio.run(run())
    except (StoreUnavailableError, EmbeddedRedisError) as exc:
        return store_error(exc)
    try:
        if args.html is not None:
            args.html.write_text(report.html(), encoding="utf-8")
        if args.json is not None:
            args.json.write_bytes(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2))
    except OSError as exc:
        return fail(EXIT_BAD_INPUT, f"cannot write the report: {exc}")
    print(report.text())
    return 0
