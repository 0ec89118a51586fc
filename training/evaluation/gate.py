"""The quality gate: may a candidate replace the live model?

Like is compared with like. The live model's recipe (its stored parameters) is refit on
the candidate's own training window and scored on the same held-out cases; the two are
compared case by case, with a paired bootstrap interval on the difference. A candidate
is refused when
- what it serves does worse than recommending popular items on either task, beyond the
  noise of the same cases (skipped for a catalog of ten items or fewer, where every top
  10 holds every item and popularity always hits); a task where the trainer chose to serve
  best-sellers (``training.stages.recipes``) serves them, and so passes this floor; or
- on either task it is worse than the live recipe beyond the noise (the interval of the
  difference lies below zero) and by more than ``tolerance`` of the live recipe's score,
  on at least ``min_cases`` cases (fewer are reported, not judged), or
- it is below what the live model measured on its own window when it was published,
  beyond the noise of both measurements (from their case counts, each at least
  ``min_cases``) and by more than ``tolerance``: the data is much less learnable than
  it was (a broken export: orders scrambled, ids mixed up), which the comparison of
  recipes on the new window alone cannot see. A measurement on few cases has a wide
  margin, so one lucky window no longer bars every later model; a real, lasting change
  in the shop's data is published with ``--force``, once, after a look;
- it was trained on far less data than the live model (a truncated export scores
  noisily, so volume is checked on its own).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training.evaluation import intervals

GATED = ("cart_hr@10", "next_recall@10")
"""The measures the gate compares: one per caller (cart widget, e-mail generator)."""
PER_CASE = {"cart_hr@10": "cart/hr@10", "next_recall@10": "next/recall@10"}
"""Where each gated measure's case-by-case scores are in ``MethodResult.per_case``."""
TOP_K = 10


@dataclass(frozen=True)
class GateRules:
    tolerance: float = 0.1
    """Relative drop against the live recipe allowed even when it is beyond the noise."""
    min_data_ratio: float = 0.5
    """Refuse a candidate trained on fewer than this share of the live model's purchases."""
    min_cases: int = 30
    """Cases a measurement needs before the candidate is judged on it."""


@dataclass
class Decision:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    compared: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """What was not judged, and why (too few cases, a tiny catalog, no live recipe)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": self.reasons,
            "compared": self.compared,
            "notes": self.notes,
        }


Paired = Mapping[str, tuple[np.ndarray, np.ndarray]]
"""Per gated measure: the candidate's and the live recipe's scores, case by case."""


def check(
    candidate: Mapping[str, float],
    popularity: Mapping[str, float],
    rows: int,
    live: Mapping[str, Any] | None,
    rules: GateRules,
    paired: Paired | None = None,
    items_ranked: int | None = None,
    cases: Mapping[str, int] | None = None,
    popular_paired: Paired | None = None,
) -> Decision:
    """``live`` is the live version's metadata, or None when nothing is live yet;
    ``paired`` the case-by-case scores of the candidate and of the live recipe refit on
    the candidate's window (None: no live recipe to compare with); ``cases`` the
    candidate's case count per gated measure; ``popular_paired`` the candidate's and
    popular items' scores case by case (None: compared by their means alone)."""
    reasons: list[str] = []
    notes: list[str] = []
    compared: dict[str, Any] = {}
    stored = (live or {}).get("evaluation", {}).get("served") or {}
    tiny = items_ranked is not None and items_ranked <= TOP_K
    if tiny:
        notes.append(
            f"the catalog has {items_ranked} items: every top {TOP_K} holds them all, so "
            "popularity is not a floor here"
        )
    for name in GATED:
        ours = float(candidate[name])
        entry: dict[str, Any] = {"candidate": ours, "popularity": float(popularity[name])}
        if tiny:
            pass
        elif popular_paired is not None and name in popular_paired:
            _against_popular(name, *popular_paired[name], entry, reasons)
        elif ours <= popularity[name]:
            reasons.append(
                f"{name} {ours:.4f} is no better than popular items ({popularity[name]:.4f})"
            )
        if name in stored:
            theirs = _Measured(float(stored[name]), _stored_cases(live, name))
            n = (cases or {}).get(name, 0) or (paired[name][0].size if paired else 0)
            _against_published(name, _Measured(ours, n), theirs, rules, entry, reasons, notes)
        if paired is not None and name in paired:
            _against_live(name, *paired[name], rules, entry, reasons, notes)
        compared[name] = entry
    if live is not None and paired is None:
        notes.append("the live model has no stored recipe to refit: not compared with it")
    live_rows = (live or {}).get("source", {}).get("rows_kept")
    if live_rows:
        compared["rows_kept"] = {"candidate": rows, "live": live_rows}
        if rows < rules.min_data_ratio * live_rows:
            reasons.append(
                f"trained on {rows:,} purchase lines, under {rules.min_data_ratio:.0%} "
                f"of the live model's {live_rows:,}: is the export complete?"
            )
    return Decision(not reasons, reasons, compared, notes)


@dataclass(frozen=True)
class _Measured:
    value: float
    cases: int

    def variance(self) -> float:
        """Of a mean of per-case scores in [0, 1], at most that of a proportion."""
        p = min(max(self.value, 0.0), 1.0)
        return p * (1.0 - p) / max(self.cases, 1)


_CASES_OF = {"cart_hr@10": "cart", "next_recall@10": "history"}
Z95 = 1.959964


def _stored_cases(live: Mapping[str, Any] | None, name: str) -> int:
    raw = (live or {}).get("evaluation", {}).get("cases", {}).get(_CASES_OF[name], 0)
    return int(raw or 0)


def _against_published(
    name: str,
    ours: _Measured,
    theirs: _Measured,
    rules: GateRules,
    entry: dict[str, Any],
    reasons: list[str],
    notes: list[str],
) -> None:
    """The candidate against what the live model measured on its own window."""
    entry["live_as_published"] = theirs.value
    entry["live_as_published_cases"] = theirs.cases
    if min(ours.cases, theirs.cases) < rules.min_cases:
        notes.append(
            f"{name}: the live model's {theirs.value:.4f} was measured on {theirs.cases} "
            f"cases and the candidate's on {ours.cases}, under the {rules.min_cases} needed "
            "to compare the two windows; not judged on it"
        )
        return
    margin = Z95 * (ours.variance() + theirs.variance()) ** 0.5
    floor = min(theirs.value * (1.0 - rules.tolerance), theirs.value - margin)
    entry["published_floor"] = floor
    if ours.value < floor:
        reasons.append(
            f"{name} {ours.value:.4f} is below the live model's {theirs.value:.4f} (on its "
            f"own window, {theirs.cases:,} cases) by more than {rules.tolerance:.0%} and "
            f"beyond the noise (floor {floor:.4f}): is the export as it was? If the shop's "
            "data really changed, --force publishes"
        )


def _against_live(
    name: str,
    ours: np.ndarray,
    theirs: np.ndarray,
    rules: GateRules,
    entry: dict[str, Any],
    reasons: list[str],
    notes: list[str],
) -> None:
    entry["live_recipe"] = float(theirs.mean()) if theirs.size else 0.0
    if ours.size < rules.min_cases:
        notes.append(
            f"{name}: {ours.size} cases, under the {rules.min_cases} needed to judge the "
            "candidate against the live recipe; not judged on it"
        )
        entry["cases"] = int(ours.size)
        return
    iv = intervals.paired(ours, theirs)
    entry.update(iv.as_dict())
    allowed = -rules.tolerance * entry["live_recipe"]
    entry["allowed"] = allowed
    if iv.high < 0 and iv.mean < allowed:
        reasons.append(
            f"{name} {ours.mean():.4f} is below the live recipe's {entry['live_recipe']:.4f} "
            f"refit on the same window, on the same {iv.cases:,} cases: {iv.mean:+.4f} (95% "
            f"interval {iv.low:+.4f} to {iv.high:+.4f}), beyond the noise and by more than "
            f"{rules.tolerance:.0%}"
        )


def _against_popular(
    name: str, ours: np.ndarray, theirs: np.ndarray, entry: dict[str, Any], reasons: list[str]
) -> None:
    """What is served against best-sellers on the same cases: refused only when below
    them beyond the noise. Where the trainer chose best-sellers for a task (they beat the
    model on the validation window), what is served there is best-sellers, and passes."""
    if ours.size == 0:
        return
    iv = intervals.paired(ours, theirs)
    entry["against_popularity"] = iv.as_dict()
    if iv.high < 0:
        reasons.append(
            f"{name} {ours.mean():.4f} is below popular items' {theirs.mean():.4f} on the same "
            f"{iv.cases:,} cases: {iv.mean:+.4f} (95% interval {iv.low:+.4f} to "
            f"{iv.high:+.4f}), beyond the noise"
        )


def describe(decision: Decision) -> list[str]:
    """One line per gated measure's comparison with the live recipe, for the run's log
    (and a dry run's), then the notes."""
    lines = []
    for name in GATED:
        e = decision.compared.get(name, {})
        if "difference" in e:
            lines.append(
                f"{name}: candidate {e['candidate']:.4f}, live recipe on this window "
                f"{e['live_recipe']:.4f}, difference {e['difference']:+.4f} (95% interval "
                f"{e['low']:+.4f} to {e['high']:+.4f}, {e['cases']:,} cases); popular items "
                f"{e['popularity']:.4f}"
                + (
                    f"; the live model measured {e['live_as_published']:.4f} on its own window"
                    if "live_as_published" in e
                    else ""
                )
            )
    return lines + decision.notes
