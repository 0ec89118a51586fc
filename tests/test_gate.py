"""The quality gate's decisions, on hand-made measurements."""

from __future__ import annotations

from typing import Any

from training.gate import GateRules, check

POPULAR = {"cart_hr@10": 0.05, "next_recall@10": 0.08}


def live(cart: float, nxt: float, rows: int = 1000) -> dict[str, Any]:
    return {
        "evaluation": {"served": {"cart_hr@10": cart, "next_recall@10": nxt}},
        "source": {"rows_kept": rows},
    }


def test_first_model_needs_only_to_beat_popularity() -> None:
    ok = check({"cart_hr@10": 0.3, "next_recall@10": 0.3}, POPULAR, 100, None, GateRules())
    assert ok.passed and not ok.reasons
    bad = check({"cart_hr@10": 0.05, "next_recall@10": 0.3}, POPULAR, 100, None, GateRules())
    assert not bad.passed
    assert "cart_hr@10 0.0500 is no better than popular items" in bad.reasons[0]


def test_a_drop_within_the_tolerance_passes_and_beyond_it_is_refused() -> None:
    rules = GateRules(tolerance=0.1)
    within = check(
        {"cart_hr@10": 0.271, "next_recall@10": 0.3}, POPULAR, 1000, live(0.3, 0.3), rules
    )
    assert within.passed
    beyond = check(
        {"cart_hr@10": 0.26, "next_recall@10": 0.3}, POPULAR, 1000, live(0.3, 0.3), rules
    )
    assert not beyond.passed
    assert "below the live model's 0.3000" in beyond.reasons[0]
    assert beyond.compared["cart_hr@10"]["floor"] == 0.3 * 0.9


def test_far_less_data_than_the_live_model_is_refused() -> None:
    good = {"cart_hr@10": 0.3, "next_recall@10": 0.3}
    decision = check(good, POPULAR, 400, live(0.3, 0.3, rows=1000), GateRules(min_data_ratio=0.5))
    assert not decision.passed
    assert "is the export complete" in decision.reasons[0]
    assert check(good, POPULAR, 600, live(0.3, 0.3, rows=1000), GateRules()).passed
