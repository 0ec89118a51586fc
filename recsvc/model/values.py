"""The typed values a version stores beside its lists: catalog facts, stock changes and
the parameters the service ranks with."""

from __future__ import annotations

from typing import NotRequired, TypedDict


class CatalogFacts(TypedDict, total=False):
    """One item's entry in ``catalog`` (a JSON array aligned with ``items``) and in
    ``catalog_items`` (the admin API's additions, which also carry ``added_at``)."""

    title: str
    category: str
    price: float
    available: bool
    margin: float
    brand: str
    image_url: str
    url: str
    currency: str
    """The price's ISO 4217 code."""
    added_at: float


class StockChange(TypedDict, total=False):
    """One item's field in ``stock``: what the admin API changed since the publish."""

    available: bool
    price: float


class Serving(TypedDict):
    """``meta["serving"]``: the parameters the service ranks a version's lists with."""

    history_items: int
    """Distinct items stored per customer (and kept from live order events)."""
    repurchase_weight: float
    """A strong neighbour's weight (the 90th percentile of first complements)."""
    repurchase_bonus: float
    """What an item bought before adds, in the same units."""
    history_recipe: NotRequired[str]
    """How a customer's suggestions (stored customers, histories) are ranked: ``model``
    (the lists, as trained) or ``popular`` (best-sellers, for a store where they beat the
    model on the trainer's validation window). Missing: ``model``."""


HISTORY_RECIPES = ("model", "popular")
"""The recipes a version may serve a customer's suggestions with (``Serving``)."""
