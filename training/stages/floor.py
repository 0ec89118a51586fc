"""The least data a model is trained on: below it, ``train`` exits 2, ``--force`` or not.

A model learns complements from orders with two or more items, and what a customer buys
next from customers with two or more orders. Below ``MIN_BASKETS`` of the first or
``MIN_REPEAT_CUSTOMERS`` of the second, neither can be learned nor measured: the quality
gate would judge noise, and ``--force`` would publish a model of a handful of lines. That
is bad input, said as such, with what is there and what is needed.
"""

from __future__ import annotations

import pandas as pd

from training.errors import InputError
from training.stages.ingest import CUSTOMER, ITEM, ORDER

MIN_BASKETS = 50
"""Orders with two or more distinct items."""
MIN_REPEAT_CUSTOMERS = 20
"""Customers with two or more orders."""


def require_enough(frame: pd.DataFrame) -> None:
    """Raises ``InputError`` (exit 2) when the clean lines are below the floor."""
    items_per_order = frame.groupby(ORDER, observed=True)[ITEM].nunique()
    orders_per_customer = frame.groupby(CUSTOMER, observed=True)[ORDER].nunique()
    baskets = int((items_per_order >= 2).sum())
    repeat = int((orders_per_customer >= 2).sum())
    if baskets >= MIN_BASKETS and repeat >= MIN_REPEAT_CUSTOMERS:
        return
    short = []
    if baskets < MIN_BASKETS:
        short.append(
            f"{baskets:,} orders with two or more items (at least {MIN_BASKETS} are needed "
            "to learn what is bought together, for the cart)"
        )
    if repeat < MIN_REPEAT_CUSTOMERS:
        short.append(
            f"{repeat:,} customers with two or more orders (at least {MIN_REPEAT_CUSTOMERS} "
            "are needed to learn and check what a customer buys next, for e-mails)"
        )
    raise InputError(
        f"too little data to train a model on: {'; and '.join(short)}. The file holds "
        f"{len(items_per_order):,} orders from {len(orders_per_customer):,} customers "
        f"over {frame[ITEM].nunique():,} items. What could still work with this much: "
        "best-sellers, and a customer's own past purchases; train again when the export "
        "holds more orders (--force skips the quality gate, never this floor)"
    )
