"""Every neighbour method finds the right neighbours on baskets whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import GROUP_A, GROUP_B, LONER, block_baskets
from training.neighbours.methods import METHODS, NeighbourInputs, top_n_dense
from training.stages import matrices
from training.stages.als import AlsParams, train_als


@pytest.fixture(scope="module")
def inputs() -> tuple[np.ndarray, NeighbourInputs]:
    inter = matrices.build(block_baskets())
    factors = train_als(
        matrices.weight(inter.customer_item, "bm25"),
        # Two blocks of items need two factors; more leave ALS free to fit noise on 41 users.
        AlsParams(factors=2, regularization=0.1, iterations=30),
    )
    return inter.items, NeighbourInputs(inter.order_item, factors)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_neighbours_stay_within_the_group(
    method: str, inputs: tuple[np.ndarray, NeighbourInputs]
) -> None:
    items, inp = inputs
    nb = METHODS[method](inp, 4)
    for group in (GROUP_A, GROUP_B):
        for item in group:
            idx, scores = nb.row(int(np.flatnonzero(items == item)[0]))
            names = [str(items[i]) for i in idx]
            assert item not in names, "an item is never its own neighbour"
            allowed = set(group) - {item}
            if method == "als-cosine":
                # One customer's one purchase gives the loner an arbitrary factor vector,
                # which plain factor cosine cannot tell from evidence.
                allowed.add(LONER)
            assert set(names) <= allowed, f"{method}: {item} -> {names}"
            assert len(names) >= 2
            assert list(scores) == sorted(scores, reverse=True)


@pytest.mark.parametrize("method", ["cooccurrence", "ease", "ease-als"])
def test_most_co_purchased_item_comes_first(
    method: str, inputs: tuple[np.ndarray, NeighbourInputs]
) -> None:
    items, inp = inputs
    nb = METHODS[method](inp, 4)
    idx, _ = nb.row(int(np.flatnonzero(items == "A1")[0]))
    assert items[idx[0]] == "A2"


def test_an_item_never_bought_with_others_has_no_co_purchase_neighbours(
    inputs: tuple[np.ndarray, NeighbourInputs],
) -> None:
    items, inp = inputs
    nb = METHODS["cooccurrence"](inp, 4)
    idx, _ = nb.row(int(np.flatnonzero(items == LONER)[0]))
    assert idx.size == 0


def test_top_n_dense_excludes_self_and_non_positive_and_pads() -> None:
    sim = np.array([[9.0, 0.5, -1.0, 0.2], [0.5, 9.0, 0.1, 0.0]], dtype=np.float32)
    nb = top_n_dense(sim, 5, offset=0)
    assert nb.indices.shape == (2, 5)
    assert nb.row(0)[0].tolist() == [1, 3]
    assert nb.row(1)[0].tolist() == [0, 2]
    assert nb.indices[0, 2:].tolist() == [-1, -1, -1]
