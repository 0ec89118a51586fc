"""The stores an answer may come from: the live version, and an A/B test's candidate.

Each arm is a ``ModelStore`` of its own (the candidate's reads the ``candidate`` pointer
with the same scripts, and keeps its own caches), so an answer never mixes versions and
the live path is unchanged while no test runs. The test in force is read like the
pointer: by a watcher every ``refresh_interval_s`` (a test started, promoted or aborted
is served by every worker within two intervals), or on every request when the interval
is 0. A request in the candidate arm that finds the test just ended is answered by the
live version, in the ``live`` arm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from recsvc import model as lay
from recsvc.config import LOGGER
from recsvc.errors import NoLiveModelError, RecsvcError
from recsvc.experiments.attribution import ALL_SLOTS, Sales, Tally
from recsvc.experiments.experiment import LIVE, Arm, Experiment, Served
from recsvc.store import AnswerWith, CustomerQuery, Fetched, ModelStore, ModelView

T = TypeVar("T")
FLUSH_INTERVAL_S = 1.0
"""How often a worker adds the answers it served to Redis's sales counts."""


def _served(test: Experiment | None, arm: Arm) -> Served:
    """An answer in ``arm`` of ``test``: the control and candidate arms name the test."""
    return Served(arm, None if test is None or arm == "live" else test.candidate)


class Arms:
    def __init__(
        self,
        layout: lay.Layout,
        live: ModelStore,
        candidate: ModelStore,
        refresh_interval_s: float,
    ) -> None:
        self._storage = live.backend
        self._layout = layout
        self.live = live
        self.candidate = candidate
        self.refresh_interval_s = refresh_interval_s
        self.tally = Tally()
        self._test: Experiment | None = None
        self._raw: bytes | None = None

    def watched(self) -> tuple[bool, Experiment | None]:
        """Whether the A/B test in force is known without a read, and which: the live
        store's last script call read it (every one does), by the watcher or a request,
        within two refresh intervals."""
        seen_at, raw = self.live.test_seen
        if time.monotonic() - seen_at > 2 * self.refresh_interval_s:
            return False, None
        return True, self._decode(raw)

    async def test(self) -> Experiment | None:
        """The A/B test in force: as last seen while fresh, else read (one fetch-script
        call, which also refreshes the live pointer)."""
        known, test = self.watched()
        if known:
            return test
        await self.live.refresh()
        return self.last_seen()

    def last_seen(self) -> Experiment | None:
        """The A/B test the live store's last script call read."""
        return self._decode(self.live.test_seen[1])

    def _decode(self, raw: bytes | None) -> Experiment | None:
        if raw is None:
            return None
        if self._raw != raw:
            try:
                self._test = Experiment.decode(raw)
            except (ValueError, KeyError, TypeError) as exc:
                logging.getLogger(LOGGER).warning(
                    "unreadable A/B test: serving the live version",
                    extra={"fields": {"error": str(exc)}},
                )
                self._test = None
            self._raw = raw
        return self._test

    async def answer(
        self, unit: str | None, fn: Callable[[ModelStore], Awaitable[T]]
    ) -> tuple[T, Served]:
        """``fn`` run on the store of ``unit``'s arm (a customer or visitor id; None:
        outside any test), and the arm that answered.

        With the test known (the watcher's), the arm's store is asked once. Otherwise the
        live store is asked first: its one round trip tells the test in force too, and
        only an answer in the candidate arm asks the candidate's store again.
        """
        known, test = self.watched()
        answered: T | None = None
        if not known:
            answered = await fn(self.live)
            test = self.last_seen()
        arm: Arm = "live" if test is None else test.arm(unit)
        if arm == "candidate":
            with contextlib.suppress(NoLiveModelError):  # the test ended meanwhile
                return await fn(self.candidate), _served(test, arm)
            arm = "live"
        if answered is None:
            answered = await fn(self.live)
        return answered, _served(test, arm)

    async def customers(
        self,
        queries: Sequence[CustomerQuery | Sequence[str]],
        units: Sequence[str | None],
        answer_with: AnswerWith | None = None,
    ) -> list[tuple[ModelView, Fetched, Served]]:
        """Each query (a stored customer or a cart) answered from its unit's arm, as
        ``answer`` does for one: one read per arm, each from one version. Without the test
        known, the live read of every query tells it, and only the candidate arm's queries
        are read again."""
        known, test = self.watched()
        out: list[tuple[ModelView, Fetched, Served]] = []
        if not known:
            view, fetched = await self.live.customers(queries, answer_with)
            test = self.last_seen()
            out = [(view, got, LIVE) for got in fetched]
        by_arm: dict[Arm, list[int]] = {}
        for i, unit in enumerate(units):
            by_arm.setdefault("live" if test is None else test.arm(unit), []).append(i)
        answers: dict[int, tuple[ModelView, Fetched, Served]] = dict(enumerate(out))
        for arm, asked in by_arm.items():
            served = _served(test, arm)
            if not known and arm != "candidate":  # the live read answers them
                answers.update((i, (*answers[i][:2], served)) for i in asked)
                continue
            store = self.candidate if arm == "candidate" else self.live
            try:
                view, fetched = await store.customers([queries[i] for i in asked], answer_with)
            except NoLiveModelError:
                if store is self.live:
                    raise
                if not known:
                    continue  # the test ended meanwhile: the live read stands, arm live
                served = LIVE
                view, fetched = await self.live.customers([queries[i] for i in asked], answer_with)
            answers.update((i, (view, got, served)) for i, got in zip(asked, fetched, strict=True))
        return [answers[i] for i in range(len(queries))]

    def count(self, version: str, served: Served, n: int = 1) -> None:
        """``n`` answers of ``version`` served in ``served``'s arm (a candidate's test is
        its own version, as its recommendation ids say)."""
        test = version if served.arm == "candidate" else served.test
        self.tally.add(version, served.arm, test, n)

    async def flush(self) -> None:
        await self.tally.flush(self._storage, self._layout)

    async def sales_totals(
        self,
    ) -> tuple[list[tuple[str, str, str, float, float, float]], list[tuple[str, str, float]]]:
        """Attributed orders, revenue and lines by (version, arm, slot), and answers by
        (version, arm), ever, for the versions still kept (live, previous, candidate):
        what ``/metrics`` exposes, summed over A/B tests."""
        layout = self._layout

        def reads(pipe: Any) -> None:
            pipe.hgetall(layout.sales_total)
            # GETs, not MGET: a cluster's pipeline refuses multi-key commands.
            for pointer in (layout.live, layout.previous, layout.candidate):
                pipe.get(pointer)

        raw, *kept_raw = await self._storage.batch(reads)
        kept = {bytes(v).decode() for v in kept_raw if v is not None}
        sales = Sales.parse([raw])
        rows: dict[tuple[str, str, str], list[float]] = {}
        for (version, arm, _test, slot), row in sales.rows.items():
            if version in kept and slot != ALL_SLOTS:
                got = rows.setdefault((version, arm, slot), [0.0, 0.0, 0.0])
                got[0] += row.orders
                got[1] += row.revenue
                got[2] += row.lines
        answers: dict[tuple[str, str], float] = {}
        for (version, arm, _test), n in sales.answers.items():
            if version in kept:
                answers[(version, arm)] = answers.get((version, arm), 0.0) + n
        return (
            [(v, a, s, o, r, n) for (v, a, s), (o, r, n) in sorted(rows.items())],
            [(v, a, n) for (v, a), n in sorted(answers.items())],
        )

    async def watch(self) -> None:
        """During an A/B test, reads the candidate's pointer every refresh interval (the
        live store's own watcher reads the live one, and the test with it), and adds the
        answers served to the sales counts every ``FLUSH_INTERVAL_S``. Run as a task by
        the app."""
        interval = self.refresh_interval_s if self.refresh_interval_s > 0 else FLUSH_INTERVAL_S
        flushed = time.monotonic()
        while True:
            with contextlib.suppress(RecsvcError):
                if self.refresh_interval_s > 0 and self.watched()[1] is not None:
                    await self.candidate.refresh()
                if time.monotonic() - flushed >= FLUSH_INTERVAL_S:
                    flushed = time.monotonic()
                    await self.flush()
            await asyncio.sleep(interval)
