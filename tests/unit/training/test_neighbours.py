"""Every neighbour method finds the right neighbours on baskets whose answer is known."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest

from tests.conftest import GROUP_A, GROUP_B, LONER, TEST_CONFIG, block_baskets
from training.cli.main import parser as trainer_parser
from training.cli.options import method_of
from training.engines.local import Stages, TrainConfig, fit
from training.errors import InputError
from training.neighbours import registry
from training.neighbours.base import NeighbourInputs, Neighbours, top_n_dense
from training.neighbours.registry import METHODS, method_for
from training.neighbours.spec import Method
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
    nb = METHODS[method].compute(inp, 4)
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
    nb = METHODS[method].compute(inp, 4)
    idx, _ = nb.row(int(np.flatnonzero(items == "A1")[0]))
    assert items[idx[0]] == "A2"


def test_an_item_never_bought_with_others_has_no_co_purchase_neighbours(
    inputs: tuple[np.ndarray, NeighbourInputs],
) -> None:
    items, inp = inputs
    nb = METHODS["cooccurrence"].compute(inp, 4)
    idx, _ = nb.row(int(np.flatnonzero(items == LONER)[0]))
    assert idx.size == 0


def test_top_n_dense_excludes_self_and_non_positive_and_pads() -> None:
    sim = np.array([[9.0, 0.5, -1.0, 0.2], [0.5, 9.0, 0.1, 0.0]], dtype=np.float32)
    nb = top_n_dense(sim, 5, offset=0)
    assert nb.indices.shape == (2, 5)
    assert nb.row(0)[0].tolist() == [1, 3]
    assert nb.row(1)[0].tolist() == [0, 2]
    assert nb.indices[0, 2:].tolist() == [-1, -1, -1]


# -- methods as plugins -------------------------------------------------------------------


def _reverse_alphabet(inputs: NeighbourInputs, top_n: int) -> Neighbours:
    """A throw-away method with an answer known without any data: every item's
    neighbours are the items before it, nearest first."""
    n = inputs.order_item.shape[1]
    indices = np.full((n, top_n), -1, np.int64)
    scores = np.zeros((n, top_n), np.float32)
    for i in range(n):
        before = np.arange(i - 1, max(i - 1 - top_n, -1), -1)
        indices[i, : before.size] = before
        scores[i, : before.size] = 1.0 / (1 + np.arange(before.size))
    return Neighbours(indices, scores)


@pytest.fixture
def throwaway() -> Iterator[Method]:
    """The method registered for one test (and taken out of the registry after it)."""
    method = registry.register(Method("reverse-alphabet", _reverse_alphabet, "a test's own"))
    try:
        yield method
    finally:
        del registry.METHODS[method.name]


def test_a_method_is_one_function_and_one_registry_line(throwaway: Method) -> None:
    """Registered, the method trains through the local engine as any built-in does: its
    lists are what it computed (with their evidence counted), and the trainer's command
    line offers it."""
    config = replace(TEST_CONFIG, method=throwaway.name, top_n=3)
    payload = fit(block_baskets(), config, Stages(out=io.StringIO()))
    items = list(payload.item_ids)
    assert items == sorted(items)  # the index is the items in order, so the answer is known
    for i, item in enumerate(items):
        idx, _ = payload.neighbours.row(i)
        assert [items[j] for j in idx] == items[max(i - 3, 0) : i][::-1], item
    assert payload.meta["params"]["neighbour_method"] == "reverse-alphabet"
    args = trainer_parser().parse_args(
        ["train", "--purchases", "x.csv", "--method", throwaway.name]
    )
    assert method_of(args) == throwaway.name
    with pytest.raises(ValueError, match="already registered"):
        registry.register(throwaway)


def test_an_engine_refuses_a_method_it_cannot_run(throwaway: Method) -> None:
    """Spark runs co-occurrence only: asked for another method it says so (exit 2 from
    the command line), and without --method it uses co-occurrence, never a silent swap."""
    args = trainer_parser().parse_args(["train", "--purchases", "x.csv", "--engine", "spark"])
    assert method_of(args) == "cooccurrence"
    for name in ("ease", throwaway.name):
        argv = ["train", "--purchases", "x.csv", "--engine", "spark", "--method", name]
        with pytest.raises(InputError, match="spark engine does not run") as refused:
            method_of(trainer_parser().parse_args(argv))
        assert "it runs: cooccurrence" in str(refused.value)
    assert method_for("ease").name == "ease"
    with pytest.raises(ValueError, match="unknown neighbour method"):
        method_for("nope")


def test_a_methods_defaults_are_the_trainers() -> None:
    """What a method reads when called directly is what ``train`` passes it by default."""
    trainer = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    method = {f.name: f.default for f in dataclasses.fields(NeighbourInputs)}
    for name in ("ease_lambda", "als_weight", "negatives", "ease_candidates"):
        assert method[name] == trainer[name], name
    for registered in METHODS.values():
        assert set(registered.params) <= set(trainer), registered.name
