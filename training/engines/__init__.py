"""Training engines: the same stages (read and clean, matrices and pair counts, ALS,
neighbours, popularity, histories) run on one machine or on a cluster.

An engine is chosen with ``--engine``; everything around it (the evaluation, the gate,
``--force``, exit codes, publishing through ``recsvc.model``, the summary line) is the
same for every engine (``training.workflow``):

- ``local`` (``training.engines.local``): pandas, scipy.sparse and ``implicit`` in one
  process, within a stated memory budget;
- ``spark`` (``training.engines.spark.engine``): Apache Spark through ``pyspark``, on any
  master (``local[*]``, standalone, YARN, Kubernetes), reading any path Spark reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from training.engines.local import Stages, TrainConfig, fit, load
from training.publish import ModelPayload
from training.stages import ingest


class Engine(Protocol):
    name: str

    def load(
        self, source: str, config: TrainConfig, stages: Stages, extra: pd.DataFrame | None = None
    ) -> tuple[Any, ingest.CleanReport]:
        """Reads and cleans the purchases: the engine's own frame, and the per-reason
        counts of what cleaning dropped."""
        ...

    def evaluation_frame(self, frame: Any, seed: int) -> pd.DataFrame:
        """The clean lines the evaluation scores on (all, or a seeded sample of
        customers), as a pandas frame in the standard columns."""
        ...

    def fit(
        self,
        frame: Any,
        config: TrainConfig,
        stages: Stages,
        for_serving: bool = True,
        catalog: pd.DataFrame | None = None,
    ) -> ModelPayload:
        """Trains on clean lines (the engine's frame, or a pandas one) and returns what a
        version publishes."""
        ...


class LocalEngine:
    """One process: ``training.engines.local``."""

    name = "local"

    def load(
        self, source: str, config: TrainConfig, stages: Stages, extra: pd.DataFrame | None = None
    ) -> tuple[pd.DataFrame, ingest.CleanReport]:
        return load(Path(source), config, stages, extra)

    def evaluation_frame(self, frame: pd.DataFrame, seed: int) -> pd.DataFrame:
        return frame

    def fit(
        self,
        frame: pd.DataFrame,
        config: TrainConfig,
        stages: Stages,
        for_serving: bool = True,
        catalog: pd.DataFrame | None = None,
    ) -> ModelPayload:
        return fit(frame, config, stages, for_serving, catalog)


LOCAL = LocalEngine()
ENGINES = ("local", "spark")
