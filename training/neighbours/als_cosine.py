"""ALS cosine: the items nearest in the ALS factor space."""

from __future__ import annotations

from training.neighbours.base import NeighbourInputs, Neighbours, blocks, unit_rows
from training.neighbours.spec import Method


def als_cosine(inputs: NeighbourInputs, top_n: int) -> Neighbours:
    """Cosine similarity of ALS item factors (the textbook method)."""
    if inputs.item_factors is None:
        raise ValueError("als-cosine needs item factors")
    unit = unit_rows(inputs.item_factors)
    return blocks(lambda a, b: unit[a:b] @ unit.T, unit.shape[0], top_n)


METHOD = Method(
    "als-cosine", als_cosine, "nearest items in the ALS factor space", needs_factors=True
)
