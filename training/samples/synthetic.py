"""A documented synthetic purchase generator, for tests and the scale benchmark.

Seeded and vectorised (20M lines in under a minute), it makes purchase lines that look
like a store's, with answers a test can check:
- **Popularity**: items have Zipf-like popularity (``zipf``) within their theme, and
  themes are Zipf-like popular among themselves.
- **Complements**: items come in themes of ``theme_size`` items (a theme is a category:
  the catalog names it). Most of an order's items (``on_theme``) come from one theme,
  the rest from anywhere: an item's right complements are its theme's items.
- **Customers**: each has two favourite themes, which their orders are about, and an
  activity drawn from a long-tailed distribution (a few customers order a lot).
- **Repeat purchases**: each customer has three staples, a share (``staples``) of their
  lines.
- **Baskets**: 1 + a geometric draw (mean ``basket``) distinct lines, capped at 60.
- **Time**: orders spread over a year; prices are log-normal per item.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _zipf_weights(n: int, exponent: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** exponent
    return np.asarray(w / w.sum())


def generate(
    lines: int,
    customers: int,
    items: int,
    theme_size: int = 50,
    basket: float = 5.0,
    zipf: float = 1.0,
    on_theme: float = 0.75,
    staples: float = 0.15,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Purchase lines and a catalog (item_id, title, category, price, available)."""
    rng = np.random.default_rng(seed)
    themes = max(1, items // theme_size)
    items = themes * theme_size
    theme_p = _zipf_weights(themes, zipf)
    rank_p = _zipf_weights(theme_size, zipf)
    # Customers: two favourite themes, long-tailed activity, three staples.
    favourite = rng.choice(themes, size=(customers, 2), p=theme_p)
    activity = rng.lognormal(0.0, 1.0, customers)
    activity /= activity.sum()
    staple_items = favourite[:, :1] * theme_size + rng.choice(
        theme_size, size=(customers, 3), p=rank_p
    )
    n_orders = int(1.2 * lines / (1.0 + basket)) + 100
    order_customer = rng.choice(customers, size=n_orders, p=activity)
    sizes = np.minimum(1 + rng.geometric(1.0 / basket, n_orders), 60)
    # Trim or pad the last orders to the exact line count.
    cum = np.cumsum(sizes)
    n_orders = int(np.searchsorted(cum, lines)) + 1
    sizes, order_customer = sizes[:n_orders].copy(), order_customer[:n_orders]
    sizes[-1] -= int(sizes.sum() - lines)
    order_theme = favourite[order_customer, rng.integers(0, 2, n_orders)]
    order_of_line = np.repeat(np.arange(n_orders), sizes)
    customer = order_customer[order_of_line]
    n = order_of_line.size
    theme = np.where(
        rng.random(n) < on_theme,
        order_theme[order_of_line],
        rng.choice(themes, size=n, p=theme_p),
    )
    item = theme * theme_size + rng.choice(theme_size, size=n, p=rank_p)
    is_staple = rng.random(n) < staples
    item = np.where(is_staple, staple_items[customer, rng.integers(0, 3, n)], item)
    start = pd.Timestamp("2024-01-01", tz="UTC").value
    order_time = np.sort(rng.integers(0, 365 * 86_400, n_orders)) * 10**9 + start
    price = np.round(np.exp(rng.normal(1.5, 0.8, items)), 2) + 0.5
    frame = pd.DataFrame(
        {
            "customer_id": customer.astype(np.int64),
            "order_id": order_of_line.astype(np.int64),
            "item_id": item.astype(np.int64),
            "quantity": rng.integers(1, 4, n).astype(np.int64),
            "timestamp": pd.to_datetime(order_time[order_of_line], utc=True),
            "price": price[item],
        }
    )
    catalog = pd.DataFrame(
        {
            "item_id": np.arange(items),
            "title": [f"item {i}" for i in range(items)],
            "category": [f"theme {i // theme_size}" for i in range(items)],
            "price": price,
            "available": True,
        }
    )
    return frame, catalog
