from __future__ import annotations

import numpy as np
import pandas as pd

from training.stages import matrices


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer": ["u1", "u1", "u1", "u2", "u2"],
            "item": ["A", "A", "B", "A", "C"],
            "order": ["o1", "o1", "o2", "o3", "o3"],
        }
    )


def test_matrices_count_distinct_orders() -> None:
    inter = matrices.build(frame())
    assert inter.items.tolist() == ["A", "B", "C"]
    assert inter.customers.tolist() == ["u1", "u2"]
    # u1 bought A twice in one order: one order, so 1.
    assert inter.customer_item.toarray().tolist() == [[1, 1, 0], [1, 0, 1]]
    assert inter.order_item.toarray().tolist() == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]


def test_weightings() -> None:
    m = matrices.build(
        pd.DataFrame({"customer": ["u"] * 3, "item": ["A", "A", "B"], "order": ["1", "2", "3"]})
    ).customer_item
    assert matrices.weight(m, "counts").toarray().tolist() == [[2, 1]]
    assert matrices.weight(m, "binary").toarray().tolist() == [[1, 1]]
    # One customer who bought everything: implicit's idf is negative here, ours is clamped.
    bm25 = matrices.weight(m, "bm25").toarray()
    assert bm25.shape == (1, 2)
    assert np.all(bm25 > 0)


def test_popularity_counts_customers_not_orders() -> None:
    inter = matrices.build(frame())
    assert matrices.popularity(inter).tolist() == [2, 1, 1]
