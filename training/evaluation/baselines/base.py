"""What every baseline family shares: the data it is built from, its grid of settings,
the tasks it answers."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from training.evaluation import evaluate as ev
from training.evaluation import recommenders as recs
from training.stages import matrices

LISTS = ev.BASELINE_LISTS


NEXT_TASKS = frozenset({ev.NEXT, ev.NEXT_NEW})


ALL_TASKS = frozenset({ev.CART, ev.NEXT, ev.NEXT_NEW})


MAIN = {ev.CART: "hr@10", ev.NEXT: "recall@10", ev.NEXT_NEW: "recall@10"}
"""The measure each task's setting is chosen by."""


@dataclass(frozen=True)
class Data:
    """What a baseline is built from: one training period's lines and matrices."""

    inter: matrices.Interactions
    frame: pd.DataFrame
    memory_bytes: int = 2 << 30


Builder = Callable[[Data, Mapping[str, Any]], recs.Recommender]


@dataclass(frozen=True)
class Family:
    name: str
    tasks: frozenset[str]
    grid: tuple[dict[str, Any], ...]
    """Settings to try, the fixed (untuned) one first."""
    build: Builder
    fixed_name: str
    """Its name at the fixed setting (a run that tunes nothing)."""
    bytes_per_line: int = 0
    """Memory a build needs per purchase line beyond the matrices (0: bounded by them)."""

    def fits(self, lines: int, memory_bytes: int) -> bool:
        """Whether a build on ``lines`` purchase lines fits what the budget leaves (else the
        family is left out, and the run says so, rather than risk the kernel's kill)."""
        return lines * self.bytes_per_line <= memory_bytes

    def label(self, params: Mapping[str, Any]) -> str:
        return label(params)


def label(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {short(v)}" for k, v in params.items())


def short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def grid(first: dict[str, Any], seed: int = 0, **axes: Sequence[Any]) -> tuple[dict[str, Any], ...]:
    """``first``, then every other combination of ``axes`` in a seeded random order (so a
    budget that stops early has sampled the whole space, not one corner)."""
    keys = list(axes)
    rest = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes.values())]
    rest = [p for p in rest if p != first]
    random.Random(seed).shuffle(rest)
    return (first, *rest)


def popularity(inter: matrices.Interactions) -> np.ndarray:
    return matrices.popularity(inter).astype(np.float64)
