"""The quality gate: may a candidate replace the live model?

A candidate is refused when, on its own held-out window,
- it does worse than recommending popular items on either task, or
- a headline measure falls more than ``tolerance`` (relative) below what the live model
  measured on its held-out window when it was published, or
- it was trained on far less data than the live model (a truncated export scores
  noisily, so volume is checked on its own).

The live model's numbers come from its stored metadata, not from re-scoring it: it was
refit on all its data, test window included, so scoring it again would flatter it.
Nightly windows overlap by all but a day, so the two measurements are comparable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GATED = ("cart_hr@10", "next_recall@10")
"""The measures the gate compares: one per caller (cart widget, e-mail generator)."""


@dataclass(frozen=True)
class GateRules:
    tolerance: float = 0.1
    """Relative drop allowed against the live model (0.1: a tenth)."""
    min_data_ratio: float = 0.5
    """Refuse a candidate trained on fewer than this share of the live model's purchases."""


@dataclass
class Decision:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    compared: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons, "compared": self.compared}


def check(
    candidate: Mapping[str, float],
    popularity: Mapping[str, float],
    rows: int,
    live: Mapping[str, Any] | None,
    rules: GateRules,
) -> Decision:
    """``live`` is the live version's metadata, or None when nothing is live yet."""
    reasons: list[str] = []
    compared: dict[str, Any] = {}
    live_eval = (live or {}).get("evaluation", {}).get("served")
    for name in GATED:
        ours = float(candidate[name])
        entry: dict[str, Any] = {"candidate": ours, "popularity": float(popularity[name])}
        if ours <= popularity[name]:
            reasons.append(
                f"{name} {ours:.4f} is no better than popular items ({popularity[name]:.4f})"
            )
        if live_eval and name in live_eval:
            theirs = float(live_eval[name])
            floor = theirs * (1.0 - rules.tolerance)
            entry.update(live=theirs, floor=floor)
            if ours < floor:
                reasons.append(
                    f"{name} {ours:.4f} is below the live model's {theirs:.4f} "
                    f"by more than {rules.tolerance:.0%} (floor {floor:.4f})"
                )
        compared[name] = entry
    live_rows = (live or {}).get("source", {}).get("rows_kept")
    if live_rows:
        compared["rows_kept"] = {"candidate": rows, "live": live_rows}
        if rows < rules.min_data_ratio * live_rows:
            reasons.append(
                f"trained on {rows:,} purchase lines, under {rules.min_data_ratio:.0%} "
                f"of the live model's {live_rows:,}: is the export complete?"
            )
    return Decision(not reasons, reasons, compared)
