"""A suggestion's reason reads as English: one order, two orders."""

from __future__ import annotations

import pytest

from recsvc.answers.recommend import counted


@pytest.mark.parametrize(
    ("n", "noun", "text"),
    [(1, "order", "1 order"), (2, "order", "2 orders"), (0, "customer", "0 customers"),
     (1_234, "customer", "1,234 customers")],
)  # fmt: skip
def test_counts_read_as_english(n: int, noun: str, text: str) -> None:
    assert counted(n, noun) == text
