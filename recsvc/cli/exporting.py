"""``recsvc export``: every stored customer's suggestions, for the e-mail generator."""

from __future__ import annotations

import argparse
import asyncio
import sys

from recsvc.answers import export
from recsvc.api.schemas import MAX_K
from recsvc.cli.common import EXIT_BAD_INPUT, fail, store_error
from recsvc.config import Settings
from recsvc.errors import NoLiveModelError, StoreUnavailableError
from recsvc.store.embedded import EmbeddedRedisError

SUFFIX_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    fmt = args.format or SUFFIX_FORMATS.get(args.out.suffix.lower())
    if fmt is None:
        return fail(
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
        return store_error(exc, "; rows written so far are kept, rerun with --resume to go on")
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc}", file=sys.stderr)
        return 2
    print(
        f"exported: customers={result.written} skipped={result.skipped} "
        f"seconds={result.seconds:.2f} per_second={result.per_second:.0f} out={args.out}"
    )
    return 0
