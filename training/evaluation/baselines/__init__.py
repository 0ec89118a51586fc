"""The baselines recsvc must beat, one module per family (co-occurrence, item-kNN, ALS,
EASE, TIFU-KNN), tuned like the served model (``tuned``)."""

from training.evaluation.baselines.als import build_als
from training.evaluation.baselines.base import (
    ALL_TASKS,
    LISTS,
    MAIN,
    NEXT_TASKS,
    Builder,
    Data,
    Family,
    grid,
    label,
    popularity,
    short,
)
from training.evaluation.baselines.cooccurrence import build_cooccurrence
from training.evaluation.baselines.ease import build_ease
from training.evaluation.baselines.knn import build_knn
from training.evaluation.baselines.tifu import (
    TIFU_BYTES_PER_LINE,
    build_tifu,
    tifu_recommender,
    tifu_vectors,
)
from training.evaluation.baselines.tuned import (
    Choice,
    FamilyTrial,
    families,
    fit_tuned,
    merge_results,
    tune,
    untuned,
)

__all__ = [
    "ALL_TASKS",
    "LISTS",
    "MAIN",
    "NEXT_TASKS",
    "TIFU_BYTES_PER_LINE",
    "Builder",
    "Choice",
    "Data",
    "Family",
    "FamilyTrial",
    "build_als",
    "build_cooccurrence",
    "build_ease",
    "build_knn",
    "build_tifu",
    "families",
    "fit_tuned",
    "grid",
    "label",
    "merge_results",
    "popularity",
    "short",
    "tifu_recommender",
    "tifu_vectors",
    "tune",
    "untuned",
]
