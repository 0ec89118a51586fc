"""Tuned baselines, TIFU-KNN, the cases' quantities and later purchases, and the upsell
slot's scoring, on small data whose right answers are known."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsvc.config import Settings
from tests.conftest import grouped_purchases
from training.engines.local import Stages, TrainConfig, fit
from training.evaluation import baselines, intervals
from training.evaluation import cases as holdout
from training.evaluation import evaluate as ev
from training.neighbours.cooccurrence import cosine_lists
from training.stages import ingest, matrices, upsell


def _t(*days: str) -> pd.DatetimeIndex:
    return pd.to_datetime(list(days), utc=True)


def test_tifu_vectors_decay_within_and_across_groups() -> None:
    # One customer, five baskets oldest first: o1 {a}, o2 {a}, o3 {b}, o4 {a, b}, o5 {c}.
    frame = pd.DataFrame(
        {
            "customer": ["u"] * 6,
            "item": ["a", "a", "b", "a", "b", "c"],
            "order": ["o1", "o2", "o3", "o4", "o4", "o5"],
            "timestamp": _t(
                "2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-04", "2024-01-05"
            ),
        }
    )
    items = np.array(["a", "b", "c"])
    _, vec = baselines.tifu_vectors(frame, items, group_size=2, r_basket=0.5, r_group=0.25)
    # Groups of 2 from the newest: {o4, o5}, {o2, o3}, {o1} (short). Within a group the
    # newest basket weighs 1, the other 0.5, over the group's size; groups weigh 1, 0.25,
    # 0.0625, over their number (3).
    g0 = {"c": 1 / 2, "a": 0.5 / 2, "b": 0.5 / 2}
    g1 = {"b": 1 / 2, "a": 0.5 / 2}
    g2 = {"a": 1 / 1}
    want = {i: (g0.get(i, 0) + 0.25 * g1.get(i, 0) + 0.0625 * g2.get(i, 0)) / 3 for i in "abc"}
    got = dict(zip(items, vec.toarray().ravel(), strict=True))
    assert got == pytest.approx(want)


def test_tifu_blends_a_customer_with_the_nearest_customers() -> None:
    # u and its twin v bought a and b; v also bought x. w bought only y, z. u's nearest
    # customer is v, so the neighbour part brings x, never y or z.
    rows = [("u", "a", 1), ("u", "b", 2), ("v", "a", 1), ("v", "b", 2), ("v", "x", 3),
            ("w", "y", 1), ("w", "z", 2)]  # fmt: skip
    frame = pd.DataFrame(
        {
            "customer": [r[0] for r in rows],
            "item": [r[1] for r in rows],
            "order": [f"{r[0]}{r[2]}" for r in rows],
            "timestamp": _t(*[f"2024-01-0{r[2]}" for r in rows]),
        }
    )
    items = np.array(["a", "b", "x", "y", "z"])
    customers, vectors = baselines.tifu_vectors(frame, items, 3, 1.0, 1.0)
    pop = np.array([2.0, 2.0, 1.0, 1.0, 1.0])
    rec = baselines.tifu_recommender(customers, vectors, pop, k=1, alpha=0.5)
    case = holdout.HistoryCase([0, 1], [1.0, 1.0], frozenset({2}), frozenset({2}), "u")
    top = rec.history(case, False)
    assert set(top[:3]) == {0, 1, 2}  # own items and the twin's x first
    assert rec.history(case, True)[0] == 2  # new items only: x leads
    # alpha 1: the customer's own items only, then popular fill.
    alone = baselines.tifu_recommender(customers, vectors, pop, k=1, alpha=1.0)
    assert alone.history(case, True)[0] in {2, 3, 4}
    assert rec.tasks == frozenset({ev.NEXT, ev.NEXT_NEW})


def test_cooccurrence_normalisations_by_hand() -> None:
    # Orders: {0,1}, {0,1}, {0,2}, {0}: c01 = 2, c02 = 1, c0 = 4, c1 = 2, c2 = 1.
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [1, 0, 1], [1, 0, 0]], np.float32))
    want = {
        "counts": (2.0, 1.0),
        "conditional": (2 / 4, 1 / 4),
        "cosine": (2 / np.sqrt(8), 1 / np.sqrt(4)),
        "jaccard": (2 / (4 + 2 - 2), 1 / (4 + 1 - 1)),
    }
    for norm, (s01, s02) in want.items():
        nb = cosine_lists(x, 2, 1 << 20, norm)
        row = dict(zip(*nb.row(0), strict=True))
        assert row[1] == pytest.approx(s01) and row[2] == pytest.approx(s02), norm
    with pytest.raises(ValueError, match="normalisation"):
        cosine_lists(x, 2, 1 << 20, "lift")


def grouped_split() -> tuple[holdout.Split, matrices.Interactions, holdout.Cases]:
    frame = grouped_purchases(orders=900, days=120)
    frame = frame.rename(columns={"customer": ingest.CUSTOMER, "item": ingest.ITEM})
    frame[ingest.TIMESTAMP] = pd.to_datetime(frame[ingest.TIMESTAMP], utc=True)
    split = holdout.temporal_split(frame, None, 0.2)
    inter = matrices.build(split.train)
    return split, inter, holdout.build_cases(split, inter.items, 30.0)


def test_tuning_keeps_the_better_setting_per_task_and_scores_it_once() -> None:
    split, inter, cases = grouped_split()
    data = baselines.Data(inter, split.train)
    # One neighbour per item against the full lists: the tuning must pick the latter for
    # carts (an 8-item group needs more than one neighbour to find a hidden item).
    fam = baselines.Family(
        "kNN", baselines.ALL_TASKS, ({"K": 1, "K1": 1.2}, {"K": 50, "K1": 1.2}),
        baselines.build_knn, "kNN (K 1)",
    )  # fmt: skip
    [choice] = baselines.tune([fam], data, cases, budget_seconds=60.0)
    assert [t.params["K"] for t in choice.trials] == [1, 50]
    by_k = {t.params["K"]: t.scores for t in choice.trials}
    assert by_k[50][ev.CART] > by_k[1][ev.CART]
    assert choice.best[ev.CART] == {"K": 50, "K1": 1.2}
    [(result, extra)] = baselines.fit_tuned([fam], [choice], data, cases, [cases])
    assert result.name == "kNN (tuned)" and result.params[ev.CART]["K"] == 50
    assert set(result.metrics) == {ev.CART, ev.NEXT, ev.NEXT_NEW}
    assert extra[0].metrics[ev.CART] == result.metrics[ev.CART]  # same cases, same answer
    # No budget at all: the fixed setting, under its fixed name.
    [(fixed, _)] = baselines.fit_tuned([fam], baselines.untuned([fam]), data, cases)
    assert fixed.name == "kNN (K 1)"
    assert fixed.metrics[ev.CART]["hr@10"] == pytest.approx(by_k[1][ev.CART], abs=0.2)


def test_a_budget_stops_the_grid_after_the_first_setting() -> None:
    split, inter, cases = grouped_split()
    data = baselines.Data(inter, split.train)
    fam = next(f for f in baselines.families() if f.name == "ALS, cosine")
    [choice] = baselines.tune([fam], data, cases, budget_seconds=0.0)
    assert len(choice.trials) == 1 and choice.trials[0].params == fam.grid[0]


def test_cart_cases_carry_quantities_customers_and_later_purchases() -> None:
    t = _t("2024-01-01", "2024-01-01", "2024-02-01", "2024-02-01", "2024-02-01", "2024-02-03")
    frame = pd.DataFrame(
        {
            ingest.CUSTOMER: ["u", "u", "u", "u", "u", "u"],
            ingest.ITEM: ["a", "b", "a", "b", "a", "c"],
            ingest.ORDER: ["o1", "o1", "o2", "o2", "o2", "o3"],
            ingest.QUANTITY: [1.0, 1.0, 2.0, 5.0, 1.0, 1.0],
            ingest.TIMESTAMP: t,
        }
    )
    split = holdout.temporal_split(frame, pd.Timestamp("2024-01-15", tz="UTC"), 0.1)
    items = np.array(["a", "b", "c"])
    cases = holdout.build_cases(split, items, 30.0)
    [case] = cases.cart  # o2 (a twice, b); o3 holds one item
    # a twice in o2 (2 + 1 units) and b (5 units): whichever is left in the cart keeps its
    # units.
    assert {*case.cart, case.hidden} == {0, 1}
    assert case.quantities == ({0: 3, 1: 5}[case.cart[0]],)
    assert case.customer == "u" and case.later == frozenset({2})  # c, two days later
    assert cases.history[0].customer == "u"


def test_intervals_of_a_mean_and_the_verdicts() -> None:
    iv = intervals.mean(np.array([0.0, 1.0] * 200))
    assert iv.low < 0.5 < iv.high and iv.high - iv.low < 0.15
    assert intervals.verdict(0.01, 0.02) == "ahead"
    assert intervals.verdict(-0.02, -0.01) == "behind"
    assert intervals.verdict(-0.01, 0.01) == "level within the noise"


def test_upsell_is_scored_against_in_band_picks_on_the_same_carts() -> None:
    # The shop: mugs of three prices bought by the same customers, so each mug's
    # alternatives are the others; the pricier mug is what those customers buy later.
    rows = []
    for c in range(40):
        rows.append((f"c{c}", f"o{c}a", "MUG-S", 10.0, "2024-01-01"))
        rows.append((f"c{c}", f"o{c}a", "TEA", 4.0, "2024-01-01"))
        rows.append((f"c{c}", f"o{c}b", "MUG-L", 15.0, f"2024-01-{2 + c % 20:02d}"))
        rows.append((f"c{c}", f"o{c}c", "MUG-M", 12.0, "2024-02-01"))
        rows.append((f"c{c}", f"o{c}c", "SPOON", 2.0, "2024-02-01"))
    frame = pd.DataFrame(rows, columns=["customer", "order", "item", "price", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame["quantity"] = 1.0
    # Titles say the mugs are one kind of item (no catalog: the upsell's only evidence).
    titles = {"MUG-S": "Small mug", "MUG-M": "Medium mug", "MUG-L": "Large mug"}
    frame["description"] = frame["item"].map(titles).fillna(frame["item"])
    config = TrainConfig(columns=ingest.Columns(customer="customer", item="item"), top_n=8)
    payload = fit(frame, config, Stages(io.StringIO()), for_serving=True)
    assert payload.alternatives is not None
    ids = payload.item_ids
    small, large, tea = ids.index("MUG-S"), ids.index("MUG-L"), ids.index("TEA")
    cases = [
        holdout.CartCase([small], tea, (1,), f"c{c}", frozenset({large})) for c in range(30)
    ] + [holdout.CartCase([small], tea, (1,), "", frozenset({large}))]  # no customer: not scored
    got = {r.name: r for r in upsell.evaluate(payload, cases, Settings(), seed=1)}
    served = got[upsell.SERVED]
    assert served.carts == 30 and got[upsell.RANDOM].carts == 30
    assert served.suggestions == got[upsell.POPULAR].suggestions
    assert served.hit_rate == 1.0  # the larger mug is offered, and bought later
    doc = upsell.report(list(got.values()))
    assert doc["methods"][0]["name"] == upsell.SERVED and set(doc["against"]) == {
        upsell.RANDOM, upsell.POPULAR
    }  # fmt: skip
    # A payload fit for scoring only has no alternatives: nothing is scored.
    bare = fit(frame, config, Stages(io.StringIO()), for_serving=False)
    assert upsell.evaluate(bare, cases) == [] and upsell.lines({})[0].startswith("upsell: not")


def test_a_baseline_that_would_not_fit_the_budget_is_left_out() -> None:
    tifu = next(f for f in baselines.families() if f.name == "TIFU-KNN")
    assert tifu.fits(100_000, 1 << 30)
    assert not tifu.fits(20_000_000, 1 << 30)  # 20M lines: about 8 GB of frames
    ease = next(f for f in baselines.families() if f.name == "EASE")
    assert ease.fits(20_000_000, 1 << 30)  # bounded by the matrices and EASE's own budget
