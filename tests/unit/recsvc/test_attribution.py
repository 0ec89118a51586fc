"""Recommendation ids that name their answer, an order's credit, and the A/B split, as pure
functions with known answers."""

from __future__ import annotations

import pytest

from recsvc.experiments.attribution import (
    ALL_SLOTS,
    Line,
    Sales,
    credit,
    field,
    origin,
    recommendation_id,
)
from recsvc.experiments.experiment import Experiment

V1 = "20261122T184500Z-3f9a1c"
V2 = "20261123T020000Z-00ab99"


def test_a_recommendation_id_names_its_version_arm_and_test() -> None:
    live = recommendation_id(V1)
    control = recommendation_id(V1, "control", V2)
    candidate = recommendation_id(V2, "candidate", V2)
    assert len(live) == len(candidate) == 27 and len(control) == 41
    assert live != recommendation_id(V1)  # random tail
    got = [origin(r) for r in (live, control, candidate)]
    assert [(o.version, o.arm, o.test) for o in got if o is not None] == [
        (V1, "live", "-"),
        (V1, "control", V2),
        (V2, "candidate", V2),
    ]


@pytest.mark.parametrize(
    "mangled",
    ["", "abc", "x0123456789abcdef", "0" * 27 + "0", "6b0e7551e9aa78" + "7" + "0" * 12, "G" * 27],
)
def test_a_mangled_or_foreign_id_names_nothing(mangled: str) -> None:
    assert origin(mangled) is None


def test_a_version_named_by_hand_gets_an_id_never_credited() -> None:
    rec = recommendation_id("my-version")
    assert rec.startswith("x") and origin(rec) is None


def test_an_order_credits_each_answer_once_with_its_lines_and_revenue() -> None:
    cart = recommendation_id(V1)
    mail = recommendation_id(V1, "control", V2)
    lines = [
        Line(2, 5.0, cart, "cross_sell", 1),
        Line(1, 3.0, cart, "upsell", 1),
        Line(1, 10.0),  # no rec of its own: the order's (the e-mail's)
        Line(1, 1.0, "ffffffffffffffffffffffffff0", "cross_sell", 2),  # not ours
    ]
    got = credit(lines, mail, "recommendations")
    assert (got.lines, got.unknown) == (3, 1)
    sums = dict(got.increments)
    daily = dict(got.daily)
    assert sums[field(V1, "live", "-", "cross_sell", "orders")] == 1.0
    assert sums[field(V1, "live", "-", "cross_sell", "revenue")] == 10.0
    assert sums[field(V1, "live", "-", "upsell", "revenue")] == 3.0
    assert sums[field(V1, "live", "-", ALL_SLOTS, "orders")] == 1.0  # one order, two slots
    assert sums[field(V1, "live", "-", ALL_SLOTS, "lines")] == 2.0
    assert sums[field(V1, "live", "-", ALL_SLOTS, "revenue_sq")] == 13.0**2
    assert sums[field(V1, "control", V2, "recommendations", "revenue")] == 10.0
    assert daily == {field(V1, "live", "-", "cross_sell", "pos:1"): 1.0,
                     field(V1, "live", "-", "upsell", "pos:1"): 1.0}  # fmt: skip
    assert not any(":" in f.rsplit("|", 1)[1] for f in sums)  # positions: per day only
    assert credit([Line(1, 2.0)], None, None).increments == []


def test_the_comparison_of_arms_is_per_answer_with_an_interval() -> None:
    counts = {
        field(V1, "control", V2, "-", "answers").encode(): b"1000",
        field(V2, "candidate", V2, "-", "answers").encode(): b"1000",
        field(V1, "control", V2, ALL_SLOTS, "orders").encode(): b"10",
        field(V1, "control", V2, ALL_SLOTS, "revenue").encode(): b"100",
        field(V1, "control", V2, ALL_SLOTS, "revenue_sq").encode(): b"1000",
        field(V2, "candidate", V2, ALL_SLOTS, "orders").encode(): b"60",
        field(V2, "candidate", V2, ALL_SLOTS, "revenue").encode(): b"600",
        field(V2, "candidate", V2, ALL_SLOTS, "revenue_sq").encode(): b"6000",
    }
    sales = Sales.parse([counts])
    assert sales.tests() == [V2]
    orders = sales.compare(V2).difference("orders")
    assert orders["difference"] == pytest.approx(0.05)
    assert orders["low"] > 0 and orders["verdict"] == "candidate ahead"
    revenue = sales.compare(V2).difference("revenue")
    assert revenue["control"] == pytest.approx(0.1) and revenue["candidate"] == pytest.approx(0.6)
    # Ten orders of ten each in 1000 answers: variance 1.0 - 0.01 per answer.
    se = ((1.0 - 0.01) / 1000 + (6.0 - 0.36) / 1000) ** 0.5
    assert revenue["high"] - revenue["low"] == pytest.approx(2 * 1.959964 * se)
    tied = Sales.parse(
        [{**counts, field(V2, "candidate", V2, ALL_SLOTS, "orders").encode(): b"11"}]
    )
    assert tied.compare(V2).difference("orders")["verdict"] == "no difference outside the noise"


def test_the_split_is_sticky_and_near_its_share() -> None:
    test = Experiment.start(V2, V1, 0.2)
    arms = [test.arm(f"customer-{n}") for n in range(20_000)]
    share = arms.count("candidate") / len(arms)
    assert 0.19 < share < 0.21  # binomial sd 0.003
    assert set(arms) == {"control", "candidate"}
    assert [test.arm(f"customer-{n}") for n in range(200)] == arms[:200]  # sticky
    assert test.arm(None) == test.arm("") == "live"
    other = Experiment.start(V1, V2, 0.2)  # another test reshuffles
    moved = sum(other.arm(f"customer-{n}") != a for n, a in enumerate(arms[:2000]))
    assert 400 < moved < 900  # 2 x 0.2 x 0.8 of them, about 640
    assert Experiment.decode(test.encode()) == test
    with pytest.raises(ValueError, match="between 0 and 1"):
        Experiment.start(V2, V1, 1.0)
