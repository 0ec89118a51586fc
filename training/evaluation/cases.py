"""The held-out cases: a temporal split of the purchases, and from it the cart cases (one
item of a test order hidden, the rest the cart) and the history cases (a customer's
purchases before the cutoff, and after it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from training.errors import InputError
from training.stages import ingest


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    test: pd.DataFrame
    cutoff: pd.Timestamp


def temporal_split(frame: pd.DataFrame, cutoff: pd.Timestamp | None, test_fraction: float) -> Split:
    """Train on everything before the cutoff, test on the rest; default: last fraction of time."""
    if ingest.TIMESTAMP not in frame:
        raise InputError("evaluation needs a timestamp column (--timestamp-col)")
    times = frame[ingest.TIMESTAMP]
    if cutoff is None:
        first, last = times.min(), times.max()
        cutoff = first + (last - first) * (1.0 - test_fraction)
    train = frame[times < cutoff]
    test = frame[times >= cutoff]
    if train.empty or test.empty:
        raise InputError(f"cutoff {cutoff} leaves an empty train or test set")
    return Split(train.reset_index(drop=True), test.reset_index(drop=True), pd.Timestamp(cutoff))


@dataclass(frozen=True)
class CartCase:
    cart: list[int]
    hidden: int
    quantities: tuple[int, ...] = ()
    """Units of each cart item in the order (as the widget sends them); empty: 1 each."""
    customer: str = ""
    later: frozenset[int] = frozenset()
    """What the same customer bought in orders placed after this one, in the test window:
    what an upsell suggestion for this cart is scored against."""


@dataclass(frozen=True)
class HistoryCase:
    items: list[int]
    weights: list[float]
    targets: frozenset[int]
    new_targets: frozenset[int]
    customer: str = ""


@dataclass(frozen=True)
class Cases:
    items: np.ndarray
    cart: list[CartCase]
    history: list[HistoryCase]
    population: dict[str, int] = field(default_factory=dict)
    """How many cases there were before sampling: cart orders and customers."""


MAX_CART_CASES = 5_000


MAX_HISTORY_CASES = 5_000
"""Cases scored at most per task: a seeded sample beyond (the report gives both counts)."""


def _codes_in(values: pd.Series, index: pd.Index) -> np.ndarray:
    """Position of each row's id in ``index`` (-1: unknown), one lookup per distinct id."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        per_cat = index.get_indexer(values.cat.categories.astype(str))
        codes = values.cat.codes.to_numpy()
        return np.where(codes >= 0, per_cat[np.maximum(codes, 0)], -1)
    return np.asarray(index.get_indexer(pd.Index(values.astype(str))))


def _group_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes per row and the ids (str) they stand for, ids sorted."""
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64), np.asarray(uniques).astype(str)


def build_cases(
    split: Split,
    items: np.ndarray,
    half_life_days: float,
    seed: int = 0,
    max_cart: int = MAX_CART_CASES,
    max_history: int = MAX_HISTORY_CASES,
    with_histories: bool = True,
) -> Cases:
    """Test cases over the items the train split knows; unknown test items are not scored.

    Vectorised over integer codes, and capped: past ``max_cart`` orders or ``max_history``
    customers, a seeded sample is scored (``population`` keeps the full counts).
    """
    index = pd.Index(np.asarray(items).astype(str))
    rng = np.random.default_rng(seed)
    test = split.test
    # -- cart completion: test orders with two or more known items, one hidden.
    item = _codes_in(test[ingest.ITEM], index)
    order, _ = _group_codes(test[ingest.ORDER])
    quantity = (
        test[ingest.QUANTITY].to_numpy(dtype=np.float64)
        if ingest.QUANTITY in test
        else np.ones(len(test))
    )
    test_nanos = test[ingest.TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
    test_cust = test[ingest.CUSTOMER].astype(str).to_numpy()
    all_lines = pd.DataFrame({"o": order, "i": item, "q": quantity, "t": test_nanos})
    known_lines = all_lines[all_lines["i"] >= 0]
    # One line per (order, item): its units summed, as a cart holds them.
    lines = known_lines.groupby(["o", "i"], sort=True)["q"].sum().reset_index()
    sizes = lines.groupby("o", sort=True).size()
    eligible = sizes.index[sizes.to_numpy() >= 2].to_numpy()
    picked = eligible
    if eligible.size > max_cart:
        picked = np.sort(rng.choice(eligible, size=max_cart, replace=False))
    chosen = lines[lines["o"].isin(picked)]
    placed = all_lines.groupby("o")["t"].max()
    owner = pd.Series(test_cust).groupby(order).first()
    later_of = _later_purchases(test_cust, item, test_nanos)
    carts: list[CartCase] = []
    for o, group in chosen.groupby("o", sort=True):
        known = group["i"].tolist()
        units = [max(1, round(q)) for q in group["q"].tolist()]
        hidden = int(rng.integers(len(known)))
        buyer = str(owner.loc[o])
        carts.append(
            CartCase(
                known[:hidden] + known[hidden + 1 :],
                known[hidden],
                tuple(units[:hidden] + units[hidden + 1 :]),
                buyer,
                later_of(buyer, int(placed.loc[o])),
            )
        )
    if not with_histories:  # another hide-one seed: only the carts change
        return Cases(items, carts, [], {"cart": int(eligible.size)})
    # -- next purchases: customers on both sides, with known items bought after.
    train = split.train
    t_cust = test[ingest.CUSTOMER].astype(str).to_numpy()
    after = pd.DataFrame({"c": t_cust, "i": item})
    after = after[after["i"] >= 0].drop_duplicates()
    tr_cust = train[ingest.CUSTOMER]
    tr_ids = pd.Index(pd.unique(tr_cust.astype(str)))
    after = after[tr_ids.get_indexer(pd.Index(after["c"])) >= 0]
    customers = np.sort(after["c"].unique())
    population = {"cart": int(eligible.size), "history": int(customers.size)}
    if customers.size > max_history:
        customers = np.sort(rng.choice(customers, size=max_history, replace=False))
    wanted = pd.Index(customers)
    after = after[wanted.get_indexer(after["c"]) >= 0]
    targets_of = {c: frozenset(g["i"].tolist()) for c, g in after.groupby("c", sort=True)}
    rows = wanted.get_indexer(tr_cust.astype(str)) >= 0
    mine = train.loc[rows]
    nanos = mine[ingest.TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
    frame = pd.DataFrame(
        {
            "c": mine[ingest.CUSTOMER].astype(str).to_numpy(),
            "i": _codes_in(mine[ingest.ITEM], index),
            "t": nanos,
        }
    )
    latest = frame.groupby("c")["t"].transform("max").to_numpy()
    age_days = (latest - frame["t"].to_numpy()).astype(np.float64) / 86_400e9
    frame["w"] = 0.5 ** (age_days / half_life_days)
    summed = frame.groupby(["c", "i"], sort=True)["w"].sum().reset_index()
    histories: list[HistoryCase] = []
    for customer, group in summed.groupby("c", sort=True):
        targets = targets_of.get(str(customer))
        if not targets:
            continue
        bought = [int(i) for i in group["i"]]
        histories.append(
            HistoryCase(bought, group["w"].tolist(), targets, targets - set(bought), str(customer))
        )
    return Cases(items, carts, histories, population)


def _later_purchases(
    customers: np.ndarray, items: np.ndarray, nanos: np.ndarray
) -> Callable[[str, int], frozenset[int]]:
    """``later(customer, t)``: the known items that customer bought after time ``t``."""
    keep = items >= 0
    frame = pd.DataFrame({"c": customers[keep], "i": items[keep], "t": nanos[keep]})
    frame = frame.sort_values(["c", "t"], kind="stable")
    by_customer = {
        str(c): (g["t"].to_numpy(), g["i"].to_numpy()) for c, g in frame.groupby("c", sort=False)
    }

    def later(customer: str, t: int) -> frozenset[int]:
        found = by_customer.get(customer)
        if found is None:
            return frozenset()
        times, bought = found
        return frozenset(int(i) for i in bought[np.searchsorted(times, t, side="right") :])

    return later
