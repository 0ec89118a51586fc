"""What a neighbour method declares (``Method``), for the registry and the engines."""

from __future__ import annotations

from dataclasses import dataclass, field

from training.neighbours.base import NeighbourMethod

LOCAL = "local"
SPARK = "spark"


@dataclass(frozen=True)
class Method:
    name: str
    compute: NeighbourMethod
    summary: str
    needs_factors: bool = False
    """Reads the ALS item factors (``NeighbourInputs.item_factors``)."""
    engines: frozenset[str] = field(default_factory=lambda: frozenset({LOCAL}))
    """The training engines that run it (``--engine``)."""
    params: tuple[str, ...] = ()
    """The ``TrainConfig`` fields it reads beyond the matrices (``ease_lambda``, ...)."""
