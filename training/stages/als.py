"""Stage 3: ALS item factors with ``implicit``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits


@dataclass(frozen=True)
class AlsParams:
    factors: int = 64
    regularization: float = 0.05
    alpha: float = 1.0
    iterations: int = 15
    random_state: int = 42

    FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"factors", "regularization", "alpha", "iterations", "random_state"}
    )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_als(user_items: sp.csr_matrix, params: AlsParams, progress: bool = False) -> np.ndarray:
    """Fits ALS on a (users x items) confidence matrix and returns the item factors.

    BLAS is held to one thread: implicit parallelises over users itself, and a second
    thread pool underneath it slows training many times over.
    """
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=params.factors,
            regularization=params.regularization,
            alpha=params.alpha,
            iterations=params.iterations,
            random_state=params.random_state,
        )
        model.fit(sp.csr_matrix(user_items, dtype=np.float32), show_progress=progress)
    return np.asarray(model.item_factors, dtype=np.float32)
