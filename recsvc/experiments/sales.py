"""``recsvc report sales``: what the suggestions sold, by version, A/B arm, slot and
position, and each A/B test's arms compared per answer with a 95% interval.

Reads the per-day sales counts (``recsvc.experiments.attribution``) of the days asked for, in one
round trip, and renders them as text, JSON, or one self-contained HTML page (inline SVG,
no scripts).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, cast

from recsvc import model as lay
from recsvc.experiments.attribution import ALL_SLOTS, Sales
from recsvc.store import backend as storage

MEASURES = (("orders", "orders per answer"), ("revenue", "revenue per answer"))


@dataclass
class SalesReport:
    since: date
    until: date
    sales: Sales

    def by_version(self) -> list[dict[str, Any]]:
        """One row per (version, arm, slot) with attributed orders, plus answers served."""
        out: dict[tuple[str, str, str], dict[str, Any]] = {}
        for (version, arm, _test, slot), row in self.sales.rows.items():
            if slot == ALL_SLOTS:
                continue
            got = out.setdefault(
                (version, arm, slot),
                {"version": version, "arm": arm, "slot": slot, "orders": 0.0, "lines": 0.0,
                 "revenue": 0.0},
            )  # fmt: skip
            got["orders"] += row.orders
            got["lines"] += row.lines
            got["revenue"] += row.revenue
        answers: dict[tuple[str, str], float] = {}
        for (version, arm, _test), n in self.sales.answers.items():
            answers[(version, arm)] = answers.get((version, arm), 0.0) + n
        rows = sorted(out.values(), key=lambda r: (r["version"], r["arm"], r["slot"]))
        for r in rows:
            r["answers"] = answers.get((r["version"], r["arm"]), 0.0)
        seen = {(r["version"], r["arm"]) for r in rows}
        rows += [
            {"version": v, "arm": a, "slot": "-", "orders": 0.0, "lines": 0.0, "revenue": 0.0,
             "answers": n}
            for (v, a), n in sorted(answers.items()) if (v, a) not in seen
        ]  # fmt: skip
        return rows

    def positions(self) -> list[dict[str, Any]]:
        """Credited lines by slot and position (1-based), over every version."""
        out: dict[tuple[str, int], float] = {}
        for (_v, _a, _t, slot), row in self.sales.rows.items():
            for pos, n in (row.positions or {}).items():
                out[(slot, pos)] = out.get((slot, pos), 0.0) + n
        return [{"slot": s, "position": p, "lines": n} for (s, p), n in sorted(out.items())]

    def tests(self) -> list[dict[str, Any]]:
        out = []
        for test in self.sales.tests():
            c = self.sales.compare(test)
            out.append(
                {
                    "test": test,
                    "answers": {"control": c.control.answers, "candidate": c.candidate.answers},
                    "orders": {"control": c.control.orders, "candidate": c.candidate.orders},
                    **{f"{m}_per_answer": c.difference(m) for m, _ in MEASURES},
                }
            )
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "by_version": self.by_version(),
            "positions": self.positions(),
            "ab_tests": self.tests(),
        }

    def text(self) -> str:
        lines = [f"sales attributed to recsvc's answers, {self.since} to {self.until} (UTC)", ""]
        head = f"{'version':<24} {'arm':<9} {'slot':<15} {'answers':>9} {'orders':>7} "
        head += f"{'lines':>7} {'revenue':>11}"
        lines.append(head)
        for r in self.by_version():
            lines.append(
                f"{r['version']:<24} {r['arm']:<9} {r['slot']:<15} {r['answers']:>9,.0f} "
                f"{r['orders']:>7,.0f} {r['lines']:>7,.0f} {r['revenue']:>11,.2f}"
            )
        if len(lines) == 3:
            lines.append("(no answers or attributed orders in these days)")
        for t in self.tests():
            lines += ["", f"A/B test of candidate {t['test']}:"]
            a = t["answers"]
            lines.append(f"  answers: control {a['control']:,.0f}, candidate {a['candidate']:,.0f}")
            for m, label in MEASURES:
                d = t[f"{m}_per_answer"]
                lines.append(
                    f"  {label}: control {d['control']:.4f}, candidate {d['candidate']:.4f}, "
                    f"difference {d['difference']:+.4f} (95% interval {d['low']:+.4f} to "
                    f"{d['high']:+.4f}): {d['verdict']}"
                )
        return "\n".join(lines)

    def html(self) -> str:
        rows = self.by_version()
        bars = [(f"{r['version']} {r['arm']} {r['slot']}", float(r["revenue"])) for r in rows]
        tables = _table(
            ["version", "arm", "slot", "answers", "orders", "lines", "revenue"],
            [[r["version"], r["arm"], r["slot"], f"{r['answers']:,.0f}", f"{r['orders']:,.0f}",
              f"{r['lines']:,.0f}", f"{r['revenue']:,.2f}"] for r in rows],
        )  # fmt: skip
        tests = ""
        for t in self.tests():
            d = t["revenue_per_answer"]
            tests += f"<h2>A/B test of candidate {html.escape(t['test'])}</h2>"
            tests += _table(
                ["measure", "control", "candidate", "difference", "95% interval", "verdict"],
                [_difference_row(label, t[f"{m}_per_answer"]) for m, label in MEASURES],
            )  # fmt: skip
            tests += _interval_chart(d["difference"], d["low"], d["high"], "revenue per answer")
        positions = _table(
            ["slot", "position", "lines"],
            [[p["slot"], str(p["position"]), f"{p['lines']:,.0f}"] for p in self.positions()],
        )
        title = f"recsvc sales, {self.since} to {self.until}"
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            "</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:"
            "collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:"
            "right}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><h2>Attributed revenue by version, arm and slot</h2>"
            f"{_bar_chart(bars)}{tables}{tests}<h2>Credited lines by position</h2>{positions}"
            "</body></html>"
        )


async def read(
    backend: storage.AsyncBackend, layout: lay.Layout, since: date, until: date
) -> SalesReport:
    """The sales counts of the days from ``since`` to ``until`` (UTC), in one round trip."""
    days = [since + timedelta(days=n) for n in range((until - since).days + 1)]

    def reads(pipe: Any) -> None:
        for day in days:
            pipe.hgetall(layout.sales_day(day.isoformat()))

    hashes = await backend.batch(reads)
    return SalesReport(since, until, Sales.parse(cast(list[dict[bytes, bytes]], hashes)))


def _difference_row(label: str, d: dict[str, Any]) -> list[str]:
    return [
        label,
        f"{d['control']:.4f}",
        f"{d['candidate']:.4f}",
        f"{d['difference']:+.4f}",
        f"{d['low']:+.4f} to {d['high']:+.4f}",
        d["verdict"],
    ]


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{th}</tr>{body}</table>"


def _svg(width: int, height: int, parts: Sequence[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif">{"".join(parts)}</svg>'
    )


def _bar_chart(bars: Sequence[tuple[str, float]], width: int = 860) -> str:
    """Horizontal bars, one per label, scaled to the largest."""
    if not bars:
        return "<p>No attributed revenue in these days.</p>"
    row, label_w = 22, 380
    top = max((v for _, v in bars), default=0.0) or 1.0
    parts = []
    for n, (label, value) in enumerate(bars):
        y = 10 + n * row
        w = (width - label_w - 90) * value / top
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="11">'
            f"{html.escape(label)}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" '
            f'fill="#4c78a8"><title>{html.escape(label)}: {value:,.2f}</title></rect>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 14}" font-size="11">{value:,.2f}</text>'
        )
    return _svg(width, 20 + len(bars) * row, parts)


def _interval_chart(diff: float, low: float, high: float, label: str, width: int = 860) -> str:
    """The candidate's difference from control with its 95% interval, about zero."""
    span = max(abs(low), abs(high), abs(diff), 1e-9) * 1.2
    mid, half = width / 2, width / 2 - 40

    def x(v: float) -> float:
        return mid + half * v / span

    parts = [
        f'<line x1="{mid}" y1="10" x2="{mid}" y2="50" stroke="#888"/>',
        f'<line x1="{x(low):.1f}" y1="30" x2="{x(high):.1f}" y2="30" stroke="#e45756" '
        'stroke-width="3"/>',
        f'<circle cx="{x(diff):.1f}" cy="30" r="5" fill="#e45756"><title>{label}: '
        f"{diff:+.4f} ({low:+.4f} to {high:+.4f})</title></circle>",
        f'<text x="{mid}" y="66" text-anchor="middle" font-size="11">candidate minus control, '
        f"{html.escape(label)} (0 at the line)</text>",
    ]
    return _svg(width, 74, parts)
