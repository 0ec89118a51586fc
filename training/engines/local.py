"""The training stages: read+clean -> matrices -> ALS -> neighbours, timed per stage.

``fit`` is free of I/O past reading the frame, so evaluation, tuning and tests call it
directly; ``training.workflow`` adds the evaluation, the gate and publishing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from recsvc.answers.picks import PICKS_PER_CUSTOMER, PickRecipe
from training import memory
from training.errors import InputError
from training.neighbours.alternatives import alternatives, pair_counts
from training.neighbours.base import NeighbourInputs, Neighbours
from training.neighbours.registry import DEFAULT_METHOD, method_for
from training.neighbours.spec import LOCAL
from training.publish import ModelPayload
from training.stages import ingest, matrices
from training.stages.als import AlsParams, train_als
from training.stages.catalog import CatalogColumns, align, from_purchases
from training.stages.histories import recent_items
from training.stages.kinds import same_kind_only

DEFAULT_PICKS = PickRecipe(PICKS_PER_CUSTOMER, 30.0, 3)
"""The service's default half-life and ``because`` limit (``recsvc.config.Settings``);
``recsvc train`` takes the service's own settings."""


@dataclass(frozen=True)
class TrainConfig:
    columns: ingest.Columns
    cleaning: ingest.CleaningRules = field(default_factory=ingest.CleaningRules)
    weighting: matrices.Weighting = "bm25"
    als: AlsParams = field(default_factory=AlsParams)
    method: str = DEFAULT_METHOD
    top_n: int = 100
    popular_n: int = 200
    ease_lambda: float = 20.0
    als_weight: float = 0.1
    recency_half_life_days: float = 120.0
    """Orders this many days older than the latest count half; 0 counts all orders alike."""
    negatives: int = 50
    """Most negative weights kept per item beside the ``top_n`` positive ones."""
    catalog: Path | None = None
    """Catalog file; None derives titles and prices from the purchase lines."""
    alternatives_n: int = 30
    """Alternatives kept per item, for the upsell slot."""
    history_items: int = 100
    """Distinct items kept per customer for ``/v1/customers/{id}`` (0: no stored histories)."""
    repurchase_bonus: float = 20.0
    """The bonus of an item bought before, in units of a strong neighbour's weight."""
    repurchase_scale: float = 1.0
    """How much a bought item's own weight (its orders, decayed) counts against its
    complements' when ranking a history with repurchases: 1 is one strong neighbour's
    weight per unit. Stores differ (measured on the validation windows: Online Retail
    best at 1, Complete Journey's groceries at 10), so the search sweeps it first."""
    ease_candidates: int = 64
    """Local EASE (large catalogs): co-occurring items each item's regression runs over."""
    delimiter: str | None = None
    """A CSV's delimiter; None sniffs it from the header (``training.stages.parsing``)."""
    catalog_columns: CatalogColumns | None = None
    """The catalog file's columns; None: a platform export its header shows, else the
    plain format (``training.stages.catalog``)."""
    preset: str | None = None
    """The export's platform (``--preset``), for the catalog's mapping too."""
    picks: PickRecipe | None = DEFAULT_PICKS
    """How each stored customer's suggestions are ranked in the trainer and stored with
    the history (``recsvc.answers.picks``); None or ``n`` 0: none stored."""
    history_recipe: str = "model"
    """How customers' suggestions are served (``recsvc.model.values.HISTORY_RECIPES``): chosen
    per store on the validation window (``training.stages.recipes``)."""

    def with_recipe(self, params: Mapping[str, Any]) -> TrainConfig:
        """This configuration's data (columns, cleaning, catalog) with the model recipe of
        ``params`` (a published version's, as ``params`` writes it): what the gate refits
        on a candidate's training window to compare like with like."""
        als = {k: v for k, v in dict(params.get("als", {})).items() if k in AlsParams.FIELDS}
        return replace(
            self,
            weighting=params.get("weighting", self.weighting),
            als=replace(self.als, **als),
            method=params.get("neighbour_method", self.method),
            top_n=int(params.get("top_n", self.top_n)),
            ease_lambda=float(params.get("ease_lambda", self.ease_lambda)),
            als_weight=float(params.get("als_weight", self.als_weight)),
            recency_half_life_days=float(
                params.get("recency_half_life_days", self.recency_half_life_days)
            ),
            negatives=int(params.get("negatives", self.negatives)),
            repurchase_bonus=float(params.get("repurchase_bonus", self.repurchase_bonus)),
            repurchase_scale=float(params.get("repurchase_scale", self.repurchase_scale)),
            history_recipe=str(params.get("history_recipe", "model")),
        )

    def params(self) -> dict[str, Any]:
        return {
            "weighting": self.weighting,
            "als": self.als.as_dict(),
            "neighbour_method": self.method,
            "top_n": self.top_n,
            "ease_lambda": self.ease_lambda,
            "als_weight": self.als_weight,
            "recency_half_life_days": self.recency_half_life_days,
            "negatives": self.negatives,
            "repurchase_bonus": self.repurchase_bonus,
            "repurchase_scale": self.repurchase_scale,
            "history_recipe": self.history_recipe,
        }


class Stages:
    """Times each stage, measures its peak memory, and reports progress on a stream
    (stderr by default); holds the memory budget every stage plans within."""

    def __init__(self, out: TextIO | None = None, budget: memory.Budget | None = None) -> None:
        self.out = out if out is not None else sys.stderr
        self.seconds: dict[str, float] = {}
        self.peak_mib: dict[str, int] = {}
        self.budget = budget or memory.Budget.parse(memory.DEFAULT_BUDGET)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.say(f"[{name}] ...")
        start = time.perf_counter()
        window = memory.Window()
        try:
            with window:
                yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)
            seen = window.max_bytes // memory.MIB
            self.peak_mib[name] = max(self.peak_mib.get(name, 0), seen)
        self.say(f"[{name}] done in {self.seconds[name]:.2f}s, peak {self.peak_mib[name]:,} MiB")

    @property
    def interactive(self) -> bool:
        """Progress bars only on a terminal: cron logs get one line per stage."""
        return bool(getattr(self.out, "isatty", lambda: False)())

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)


def load(
    path: Path, config: TrainConfig, stages: Stages, extra: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, ingest.CleanReport]:
    """Reads and cleans the purchases; ``extra`` lines (live order events, in the standard
    columns) join the file's before cleaning, under the same rules."""
    rows = ingest.count_rows(path)
    if rows is not None:
        stages.budget.require(
            "read",
            memory.read_bytes(rows, len(config.columns.mapping())),
            f"{rows:,} purchase lines",
        )
    with stages.stage("read"):
        raw = ingest.read_purchases(path, config.columns, config.delimiter)
        if extra is not None and not extra.empty:
            from training.stages.events import with_events

            before = len(raw)
            raw = with_events(raw, extra)
            stages.say(f"  {len(raw) - before:,} lines from live order events")
    with stages.stage("clean"):
        frame, report = ingest.clean(raw, config.cleaning, config.columns.mapping())
    for line in report.lines():
        stages.say("  " + line)
    return frame, report


def fit(
    frame: pd.DataFrame,
    config: TrainConfig,
    stages: Stages,
    for_serving: bool = True,
    catalog: pd.DataFrame | None = None,
) -> ModelPayload:
    """Trains on clean purchase lines and returns everything a version publishes.

    ``for_serving=False`` stops at what the evaluation scores (complements, popularity,
    serving weights): evidence counts, alternatives, stored histories and the catalog
    only serve answers, and tuning fits a model per trial.
    """
    try:
        method = method_for(config.method, LOCAL)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    budget = stages.budget
    budget.require(
        "matrices",
        memory.matrices_bytes(len(frame)),
        f"{len(frame):,} purchase lines",
    )
    with stages.stage("matrices"):
        inter = matrices.build(frame)
        if inter.n_items < 2:
            raise InputError(f"need at least 2 distinct items to train, found {inter.n_items}")
        confidence = matrices.weight(inter.customer_item, config.weighting)
    stages.say(
        f"  {inter.customers.size:,} customers x {inter.n_items:,} items, "
        f"{inter.order_item.shape[0]:,} orders, {inter.customer_item.nnz:,} customer-item pairs"
    )
    n_customers, n_items = int(inter.customers.size), inter.n_items
    budget.require(
        "als",
        memory.als_bytes(n_customers, n_items, config.als.factors, confidence.nnz),
        f"{config.als.factors} factors for {n_customers:,} customers and {n_items:,} items",
    )
    with stages.stage("als"):
        factors = train_als(confidence, config.als, progress=stages.interactive)
    per_item = config.top_n + config.negatives + config.alternatives_n
    budget.require(
        "neighbours",
        memory.minimum_neighbours_bytes(n_items, per_item, config.ease_candidates),
        f"{per_item} list entries for each of {n_items:,} items",
    )
    with stages.stage("neighbours"):
        pop = matrices.popularity(inter)
        inputs = NeighbourInputs(
            inter.order_item,
            factors,
            config.ease_lambda,
            config.als_weight,
            matrices.order_weights(inter, config.recency_half_life_days),
            config.negatives,
            memory_bytes=budget.available() - memory.lists_bytes(n_items, per_item),
            ease_candidates=config.ease_candidates,
        )
        max_entries = inputs.max_entries
        nb = method.compute(inputs, config.top_n)
        alts = None
        if for_serving:
            nb = nb.with_counts(pair_counts(inter.order_item, nb.indices, max_entries))
            alts = alternatives(
                inter.customer_item,
                inter.order_item,
                factors,
                config.alternatives_n,
                max_entries=max_entries,
            )
    counts = {
        "customers": int(inter.customers.size),
        "items": int(inter.n_items),
        "orders": int(inter.order_item.shape[0]),
        "customer_item_pairs": int(inter.customer_item.nnz),
    }
    solver = inputs.ease_solver() if config.method.startswith("ease") else config.method
    meta = model_meta(config, counts, nb, solver)
    histories: Mapping[str, tuple[list[str], list[int], list[int]]] = {}
    if for_serving and config.history_items > 0:
        budget.require(
            "histories",
            memory.histories_bytes(n_customers, config.history_items),
            f"up to {config.history_items} items for each of {n_customers:,} customers",
        )
        with stages.stage("histories"):
            histories = recent_items(frame, config.history_items)
        meta["customers_stored"] = len(histories)
    if ingest.TIMESTAMP in frame:
        meta["data_period"] = {
            "first": pd.Timestamp(frame[ingest.TIMESTAMP].min()).isoformat(),
            "last": pd.Timestamp(frame[ingest.TIMESTAMP].max()).isoformat(),
        }
    item_ids = [str(i) for i in inter.items]
    facts = None
    if for_serving:
        with stages.stage("catalog"):
            facts = align(item_ids, catalog, from_purchases(frame))
        meta["catalog"] = catalog_meta(facts, catalog is not None)
    return package(
        item_ids, nb, pop, config.popular_n, meta, histories=histories, alternatives=alts,
        catalog=facts, picks=config.picks if histories else None,
    )  # fmt: skip


def package(
    item_ids: list[str],
    nb: Neighbours,
    pop: np.ndarray,
    popular_n: int,
    meta: dict[str, Any],
    **parts: Any,
) -> ModelPayload:
    """What an engine publishes: its lists, the ``popular_n`` most popular items (distinct
    customers each, the evidence of a popular suggestion), and the other ``parts``.

    Alternatives of another kind than their item are dropped here, for every engine: an
    upsell is a pricier item of the same kind, which the category says, else the titles;
    a pair with neither is no alternative (``training.stages.kinds``)."""
    alts, facts = parts.get("alternatives"), parts.get("catalog")
    if alts is not None and facts is not None:
        parts["alternatives"], dropped = same_kind_only(alts, facts)
        meta.setdefault("catalog", {})["alternatives_of_another_kind_dropped"] = dropped
    popular = np.argsort(-pop, kind="stable")[:popular_n]
    return ModelPayload(
        item_ids=item_ids,
        neighbours=nb,
        popular_indices=popular,
        popular_scores=pop[popular].astype(np.float32),
        popular_counts=pop[popular].astype(np.int64),
        meta=meta,
        **parts,
    )


def model_meta(
    config: TrainConfig, counts: dict[str, int], nb: Neighbours, solver: str
) -> dict[str, Any]:
    """What every engine's version says of itself: counts, recipe, solver, and the weights
    the service ranks with."""
    first = nb.scores[:, 0][nb.indices[:, 0] >= 0]
    # An item bought before scores like a strong neighbour when repurchases are wanted.
    strong = float(np.quantile(first, 0.9)) if first.size else 1.0
    return {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "counts": counts,
        "params": config.params(),
        "neighbour_solver": solver,
        # A bonus of a few strong neighbours' weight ranks past purchases first: measured
        # on Online Retail, that lifts next-purchase recall above both past purchases
        # alone and neighbours alone.
        "serving": {
            "history_items": config.history_items,
            "repurchase_weight": config.repurchase_scale * strong,
            "repurchase_bonus": config.repurchase_bonus * strong,
            "history_recipe": config.history_recipe,
        },
    }


def catalog_meta(facts: list[dict[str, Any]], from_file: bool) -> dict[str, Any]:
    return {
        "source": "file" if from_file else "purchases",
        "with_price": sum(1 for f in facts if "price" in f),
        "with_category": sum(1 for f in facts if "category" in f),
    }
