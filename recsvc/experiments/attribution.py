"""What recsvc sold: recommendation ids that name their answer, and an order's credit.

A recommendation id says where its answer came from, so an order event that carries it
(the links' ``rec``) is credited without the service storing any answer:

- 14 hex digits: the model version (its Unix second and its random suffix);
- 1 digit: the arm (0 ``live``, 1 ``control``, 2 ``candidate``: ``recsvc.experiments.experiment``);
- for the control arm, 14 more: the A/B test's candidate version, which names the test;
- 12 random hex digits.

So ``0c4f8a2b3f9a1c0d4e5f6a7b8c9d`` is an answer of version ``20261122T184500Z-3f9a1c``
outside any test. Ids of versions named by hand (not ``layout.new_version``'s form) start
with ``x`` and are never credited.

An order's lines are credited to the answer named by their own ``recommendation_id`` (with
the ``slot`` and ``position`` of the link), or else by the order's. For each answer's
version, arm, test and slot (and ``*``, all slots) an order adds 1 order, its credited
lines, their revenue (quantity x unit price) and that revenue squared (for the interval of
revenue per answer); each credited position adds a line at ``pos:N`` (per day only). The
counts live in Redis (``layout.sales_total`` and per day), added in the event's own
script, so a duplicate order adds nothing. Answers served are counted per worker
(``Tally``) and added to the same hashes about once a second. Pure but for ``Tally.flush``.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from recsvc import model as lay
from recsvc.experiments.experiment import ARMS, Arm
from recsvc.store import backend as storage

SLOTS = ("cross_sell", "upsell", "recommendations")
"""Where a suggestion was shown: the cart's two slots, or a customer's (history, stored
customer, batch and export) answers."""
UNKNOWN_SLOT = "unknown"
ALL_SLOTS = "*"
NO_TEST = "-"
MEASURES = ("orders", "lines", "revenue", "revenue_sq")
ANSWERS = "answers"
_VERSION = re.compile(r"^(\d{8}T\d{6}Z)-([0-9a-f]{6})$")
_CODE = {arm: str(n) for n, arm in enumerate(ARMS)}
_ARM = {code: arm for arm, code in _CODE.items()}
_HEX = re.compile(r"^[0-9a-f]+$")
_RANDOM = 12


@functools.lru_cache(maxsize=64)
def _packed(version: str) -> str | None:
    m = _VERSION.match(version)
    if m is None:
        return None
    stamp = datetime.strptime(m[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return f"{int(stamp.timestamp()):08x}{m[2]}"


def _unpacked(text: str) -> str:
    stamp = datetime.fromtimestamp(int(text[:8], 16), UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{text[8:14]}"


@functools.lru_cache(maxsize=64)
def _head(version: str, arm: Arm, test: str | None) -> str | None:
    packed = _packed(version)
    if packed is None:
        return None
    if arm != "control":
        return packed + _CODE[arm]
    other = _packed(test or "")
    return None if other is None else packed + _CODE[arm] + other


def recommendation_id(version: str, arm: Arm = "live", test: str | None = None) -> str:
    """A new answer's id: its version, arm and (control arm) test, and 12 random digits."""
    head = _head(version, arm, test)
    if head is None:
        return "x" + secrets.token_hex(8)
    return head + secrets.token_hex(_RANDOM // 2)


@dataclass(frozen=True)
class Origin:
    """The answer a recommendation id names."""

    version: str
    arm: Arm
    test: str
    """The A/B test's candidate version (``-`` outside a test)."""


def origin(rec: str) -> Origin | None:
    """The answer ``rec`` names, or None (not one of ours, mangled, or not creditable)."""
    if len(rec) < 15 or not _HEX.match(rec):
        return None
    arm = _ARM.get(rec[14])
    if arm is None:
        return None
    version = _unpacked(rec[:14])
    if arm == "control":
        if len(rec) != 15 + 14 + _RANDOM:
            return None
        return Origin(version, arm, _unpacked(rec[15:29]))
    if len(rec) != 15 + _RANDOM:
        return None
    return Origin(version, arm, version if arm == "candidate" else NO_TEST)


def field(version: str, arm: str, test: str, slot: str, measure: str) -> str:
    return f"{version}|{arm}|{test}|{slot}|{measure}"


@dataclass(frozen=True)
class Line:
    """An order line as attribution sees it."""

    quantity: int
    price: float | None
    recommendation_id: str | None = None
    slot: str | None = None
    position: int | None = None


@dataclass(frozen=True)
class Credit:
    increments: list[tuple[str, float]]
    """(sales field, amount) to add to the total and the day's counts."""
    daily: list[tuple[str, float]]
    """(sales field, amount) to add to the day's counts only: lines by position, which
    would grow the total's hash (read at every scrape) by up to a hundred fields a slot."""

    def script_argument(self) -> list[list[object]]:
        """``ORDER_EVENT_SCRIPT``'s credit list."""
        return [[f, a] for f, a in self.increments] + [[f, a, True] for f, a in self.daily]

    lines: int
    """Lines credited to an answer."""
    unknown: int
    """Lines naming a recommendation id that names no answer of ours (not credited)."""


def credit(lines: Sequence[Line], order_rec: str | None, order_slot: str | None) -> Credit:
    """What one order credits to the answers its lines came from."""
    groups: dict[tuple[str, str, str, str], list[float]] = {}
    positions: dict[tuple[str, str, str, str, str], int] = {}
    credited = unknown = 0
    for line in lines:
        rec = line.recommendation_id or order_rec
        if rec is None:
            continue
        found = origin(rec)
        if found is None:
            unknown += 1
            continue
        credited += 1
        slot = line.slot if line.recommendation_id else (line.slot or order_slot)
        slot = slot or UNKNOWN_SLOT
        revenue = line.quantity * (line.price or 0.0)
        for s in (slot, ALL_SLOTS):
            key = (found.version, found.arm, found.test, s)
            got = groups.setdefault(key, [0.0, 0.0])
            got[0] += 1
            got[1] += revenue
        if line.position is not None:
            at = (found.version, found.arm, found.test, slot, f"pos:{line.position}")
            positions[at] = positions.get(at, 0) + 1
    increments: list[tuple[str, float]] = []
    for (version, arm, test, slot), (n, revenue) in groups.items():
        increments += [
            (field(version, arm, test, slot, "orders"), 1.0),
            (field(version, arm, test, slot, "lines"), n),
            (field(version, arm, test, slot, "revenue"), round(revenue, 6)),
            (field(version, arm, test, slot, "revenue_sq"), round(revenue * revenue, 6)),
        ]
    daily = [(field(*key), float(n)) for key, n in positions.items()]
    return Credit(increments, daily, credited, unknown)


class Tally:
    """Answers served by this worker since its last flush, by version, arm and test."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str], int] = {}

    def add(self, version: str, arm: Arm, test: str | None, n: int = 1) -> None:
        key = (version, arm, test or NO_TEST)
        self._counts[key] = self._counts.get(key, 0) + n

    async def flush(self, backend: storage.AsyncBackend, layout: lay.Layout) -> None:
        """Adds the counts to the total and today's hashes, in one round trip; kept for the
        next flush if Redis does not answer (raises its error)."""
        counts, self._counts = self._counts, {}
        if not counts:
            return
        day = layout.sales_day(lay.today())

        def increments(pipe: Any) -> None:
            for (version, arm, test), n in counts.items():
                name = field(version, arm, test, NO_TEST, ANSWERS)
                pipe.hincrby(layout.sales_total, name, n)
                pipe.hincrby(day, name, n)
            pipe.expire(day, lay.SALES_DAYS_KEPT * 86400)

        try:
            await backend.batch(increments)
        except Exception:
            for key, n in counts.items():  # counted again at the next flush
                self._counts[key] = self._counts.get(key, 0) + n
            raise


@dataclass
class Row:
    """Counts of one (version, arm, test, slot)."""

    orders: float = 0.0
    lines: float = 0.0
    revenue: float = 0.0
    revenue_sq: float = 0.0
    positions: dict[int, float] | None = None


@dataclass
class Sales:
    """Parsed sales counts: per (version, arm, test, slot), and answers per (version, arm,
    test)."""

    rows: dict[tuple[str, str, str, str], Row]
    answers: dict[tuple[str, str, str], float]

    @classmethod
    def parse(cls, hashes: Iterable[Mapping[bytes, bytes]]) -> Sales:
        rows: dict[tuple[str, str, str, str], Row] = {}
        answers: dict[tuple[str, str, str], float] = {}
        for h in hashes:
            for raw, value in h.items():
                parts = raw.decode(errors="replace").split("|")
                if len(parts) != 5:
                    continue
                version, arm, test, slot, measure = parts
                amount = float(value)
                if measure == ANSWERS:
                    key3 = (version, arm, test)
                    answers[key3] = answers.get(key3, 0.0) + amount
                    continue
                row = rows.setdefault((version, arm, test, slot), Row())
                if measure.startswith("pos:"):
                    row.positions = row.positions or {}
                    at = int(measure[4:])
                    row.positions[at] = row.positions.get(at, 0.0) + amount
                elif measure in MEASURES:
                    setattr(row, measure, getattr(row, measure) + amount)
        return cls(rows, answers)

    def tests(self) -> list[str]:
        """The A/B tests (candidate versions) these counts hold answers or orders of."""
        found = {t for (_, _, t) in self.answers if t != NO_TEST}
        found |= {t for (_, _, t, _) in self.rows if t != NO_TEST}
        return sorted(found)

    def arm(self, test: str, arm: Arm) -> ArmTotals:
        answers = sum(n for (_, a, t), n in self.answers.items() if a == arm and t == test)
        row = Row()
        for (_, a, t, s), r in self.rows.items():
            if a == arm and t == test and s == ALL_SLOTS:
                row.orders += r.orders
                row.revenue += r.revenue
                row.revenue_sq += r.revenue_sq
        return ArmTotals(answers, row.orders, row.revenue, row.revenue_sq)

    def compare(self, test: str) -> Comparison:
        return Comparison(test, self.arm(test, "control"), self.arm(test, "candidate"))


@dataclass(frozen=True)
class ArmTotals:
    answers: float
    orders: float
    revenue: float
    revenue_sq: float

    def orders_per_answer(self) -> tuple[float, float]:
        """Mean and its standard error (each answer leads to at most one order, mostly)."""
        if self.answers <= 0:
            return 0.0, 0.0
        p = min(self.orders / self.answers, 1.0)
        return p, (p * (1 - p) / self.answers) ** 0.5

    def revenue_per_answer(self) -> tuple[float, float]:
        if self.answers <= 0:
            return 0.0, 0.0
        mean = self.revenue / self.answers
        var = max(self.revenue_sq / self.answers - mean * mean, 0.0)
        return mean, (var / self.answers) ** 0.5


Z95 = 1.959964


@dataclass(frozen=True)
class Comparison:
    """Candidate minus control, per answer, with a 95% interval (normal approximation)."""

    test: str
    control: ArmTotals
    candidate: ArmTotals

    def difference(self, measure: str) -> dict[str, Any]:
        get = "orders_per_answer" if measure == "orders" else "revenue_per_answer"
        (c, c_se), (t, t_se) = getattr(self.control, get)(), getattr(self.candidate, get)()
        diff, se = t - c, (c_se**2 + t_se**2) ** 0.5
        low, high = diff - Z95 * se, diff + Z95 * se
        enough = self.control.answers > 0 and self.candidate.answers > 0
        if not enough:
            verdict = "not enough answers"
        elif low > 0:
            verdict = "candidate ahead"
        elif high < 0:
            verdict = "candidate behind"
        else:
            verdict = "no difference outside the noise"
        return {
            "control": c,
            "candidate": t,
            "difference": diff,
            "low": low,
            "high": high,
            "verdict": verdict,
        }
