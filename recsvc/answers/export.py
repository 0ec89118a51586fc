"""``recsvc export``: suggestions for many customers, streamed to JSON Lines or CSV.

For the e-mail generator: a list of customer ids, or an audience picked by the date of
each customer's last purchase (a post-purchase follow-up N days after, or win-back after
30/60/90+ days). Customers are looked up in chunks, one Redis round trip per chunk, and
every chunk is written and flushed before the next, so an interrupted export keeps what
it wrote and ``--resume`` carries on after the last customer written.
"""

from __future__ import annotations

import csv
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from recsvc.answers import picks
from recsvc.answers import recommend as rec
from recsvc.config import Settings
from recsvc.store import CustomerQuery, ModelStore, ModelView
from recsvc.store import backend as storage
from recsvc.store.embedded import redis_url_for

FORMATS = ("jsonl", "csv")
CHUNK = 500


@dataclass(frozen=True)
class Audience:
    """Customers whose last purchase was between ``min_days`` and ``max_days`` days ago."""

    min_days: int
    max_days: int | None = None

    def wants(self, last_day: int, today: int) -> bool:
        if last_day < 0:
            return False  # undated histories cannot be placed in time
        age = today - last_day
        return age >= self.min_days and (self.max_days is None or age <= self.max_days)


@dataclass
class ExportResult:
    written: int = 0
    skipped: int = 0
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def as_of_day(view: ModelView, as_of: date | None) -> int:
    """Today, for audiences: given, else the latest purchase in the model's data.

    The model's own last day rather than the clock: a nightly export right after training
    measures "N days ago" from the data it has, and old exports (tests, Online Retail)
    still find their customers.
    """
    if as_of is None:
        last = view.meta.get("data_period", {}).get("last")
        as_of = datetime.fromisoformat(last).date() if last else datetime.now(UTC).date()
    return (as_of - date(1970, 1, 1)).days


def _has_content(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def drop_torn_tail(path: Path) -> None:
    """Cuts a last line a killed run left half-written, so appending starts clean."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def already_written(path: Path, fmt: str) -> set[str]:
    if not path.exists():
        return set()
    drop_torn_tail(path)
    done: set[str] = set()
    with path.open(encoding="utf-8", newline="") as f:
        if fmt == "jsonl":
            for line in f:
                try:
                    done.add(str(orjson.loads(line)["customer_id"]))
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    break  # a torn last line: written again
        else:
            reader = csv.reader(f)
            next(reader, None)
            done.update(row[0] for row in reader if row)
    return done


CSV_ITEM_FIELDS = (("id", "item_id"), ("title", "title"), ("price", "price"), ("url", "url"),
                   ("image", "image_url"), ("currency", "currency"))  # fmt: skip
"""Each suggested item's CSV columns (``item_1_id, item_1_title, …``) and the answer's
field each holds: what an e-mail tool's template needs (a link and a picture)."""


class Writer:
    def __init__(self, out: TextIO, fmt: str, k: int, header: bool) -> None:
        self.out, self.fmt, self.k = out, fmt, k
        self.csv = csv.writer(out) if fmt == "csv" else None
        if self.csv is not None and header:
            self.csv.writerow(
                ["customer_id", "recommendation_id", "model_version", "fallback"]
                + [f"item_{i}_{name}" for i in range(1, k + 1) for name, _ in CSV_ITEM_FIELDS]
            )

    def write(self, row: dict[str, Any]) -> None:
        if self.csv is None:
            self.out.write(orjson.dumps(row).decode() + "\n")
            return
        cells: list[Any] = []
        for s in row["recommendations"][: self.k]:
            cells += ["" if s.get(key) is None else s[key] for _, key in CSV_ITEM_FIELDS]
        self.csv.writerow(
            [row["customer_id"], row["recommendation_id"], row["model_version"], row["fallback"]]
            + cells
            + [""] * (len(CSV_ITEM_FIELDS) * self.k - len(cells))
        )


def _chunks(ids: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for customer in ids:
        customer = customer.strip()
        if not customer:
            continue
        chunk.append(customer)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _audience_chunks(
    store: ModelStore, view: ModelView, audience: Audience, today: int
) -> AsyncIterator[list[str]]:
    # A live order event (``/v1/events/orders``) moves a customer's last purchase on.
    async for batch in store.scan_customers(view):
        recent = await store.events.event_days([c for c, _ in batch])
        picked = [
            c
            for (c, history), day in zip(batch, recent, strict=True)
            if audience.wants(max(history.last_day, day), today)
        ]
        if picked:
            yield picked
    async for batch in store.events.scan_event_customers(view):
        picked = [c for c, history in batch if audience.wants(history.last_day, today)]
        if picked:
            yield picked


async def run(
    settings: Settings,
    out: Path,
    *,
    fmt: str = "jsonl",
    customers: Iterable[str] | None = None,
    audience: Audience | None = None,
    as_of: date | None = None,
    k: int = 10,
    exclude_purchased: bool = True,
    resume: bool = False,
    progress: TextIO | None = None,
) -> ExportResult:
    """Writes one line (row) per customer; raises StoreUnavailableError with rows kept."""
    result = ExportResult()
    start = time.perf_counter()
    done = already_written(out, fmt) if resume else set()
    with redis_url_for(
        settings.redis_url, settings.data_dir, allow_embedded=settings.allow_embedded_redis
    ) as url:
        client = storage.async_client(
            url, settings.redis_cluster, settings.redis_timeout_s, blocking=False
        )
        try:
            store = ModelStore(client, settings.layout)
            view = await store.live_view()
            header = not (resume and _has_content(out))
            with out.open("a" if resume else "w", encoding="utf-8", newline="") as f:
                writer = Writer(f, fmt, k, header)
                if audience is not None:
                    source: AsyncIterator[list[str]] = _audience_chunks(
                        store, view, audience, as_of_day(view, as_of)
                    )
                else:
                    source = _aiter(_chunks(customers or [], CHUNK))
                async for chunk in source:
                    todo = [c for c in chunk if c not in done]
                    result.skipped += len(chunk) - len(todo)
                    for part in _chunks(todo, CHUNK):
                        await _export_chunk(store, settings, writer, part, k, exclude_purchased)
                        f.flush()
                        result.written += len(part)
                        result.seconds = time.perf_counter() - start
                        if progress is not None:
                            print(
                                f"exported {result.written:,} customers "
                                f"({result.per_second:,.0f}/s)",
                                file=progress,
                                flush=True,
                            )
        finally:
            await client.aclose()
    result.seconds = time.perf_counter() - start
    return result


async def _export_chunk(
    store: ModelStore,
    settings: Settings,
    writer: Writer,
    customers: list[str],
    k: int,
    exclude_purchased: bool,
) -> None:
    picked = picks.answering(settings, k, exclude_purchased)
    view, fetched = await store.customers([CustomerQuery(c) for c in customers], picked)
    for customer, got in zip(customers, fetched, strict=True):
        ranking = got.ranked or rec.rank_stored(
            view, settings, got.history, got.lists, k, exclude_purchased
        )
        writer.write(
            rec.render(view, ranking, "recommendations", stored=True, customer_id=customer)
        )


async def _aiter(chunks: Iterator[list[str]]) -> AsyncIterator[list[str]]:
    for chunk in chunks:
        yield chunk


def iter_ids(path: Path) -> Iterator[str]:
    """Customer ids from a file, lazily: one per line, or a CSV's first column.

    A first line reading ``customer_id`` (or ``customer``, ``id``) is a header.
    """
    with path.open(encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f)):
            if not row:
                continue
            if n == 0 and row[0].strip().lower() in {"customer_id", "customer", "id"}:
                continue
            yield row[0]
