"""Merchandising rules: service defaults and per-request rules, merged, then a mask.

Pure functions of the catalog arrays of a model view and the rules, so they are tested
without Redis. A request's rules add to the service defaults: lists are joined, a value
given in the request replaces the default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from recsvc.model import MAX_ITEM_ID_LENGTH
from recsvc.model.fields import WHOLE

Factor = Annotated[float, Field(gt=0, le=100)]
MAX_CATEGORY_LENGTH = 128
RuleItem = Annotated[str, Field(min_length=1, max_length=MAX_ITEM_ID_LENGTH)]
Category = Annotated[str, Field(max_length=MAX_CATEGORY_LENGTH)]


class MerchRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    available_only: bool | None = Field(
        default=None, description="Suggest in-stock items only (default: on)."
    )
    exclude_items: list[RuleItem] = Field(default_factory=list, max_length=1000)
    exclude_categories: list[Category] = Field(default_factory=list, max_length=200)
    only_categories: list[Category] | None = Field(default=None, max_length=200)
    min_price: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    max_price: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    max_per_category: Annotated[int, Field(ge=1, le=100), WHOLE] | None = None
    boost: dict[RuleItem, Factor] = Field(
        default_factory=dict,
        max_length=200,
        description="Item id -> score factor, for a campaign.",
    )
    pin: list[RuleItem] = Field(
        default_factory=list, max_length=20, description="Items placed first, in order."
    )

    def merged(self, request: MerchRules | None) -> MerchRules:
        """These rules (the service defaults) with a request's rules on top."""
        if request is None:
            return self
        return MerchRules(
            available_only=(
                request.available_only
                if request.available_only is not None
                else self.available_only
            ),
            exclude_items=[*self.exclude_items, *request.exclude_items],
            exclude_categories=[*self.exclude_categories, *request.exclude_categories],
            only_categories=(
                request.only_categories
                if request.only_categories is not None
                else self.only_categories
            ),
            min_price=request.min_price if request.min_price is not None else self.min_price,
            max_price=request.max_price if request.max_price is not None else self.max_price,
            max_per_category=request.max_per_category or self.max_per_category,
            boost={**self.boost, **request.boost},
            pin=request.pin or self.pin,
        )


class CatalogArrays:
    """What the rules need of a catalog, one entry per model item."""

    def __init__(
        self,
        price: npt.NDArray[np.float64],
        available: npt.NDArray[np.bool_],
        category: npt.NDArray[np.int64],
        categories: Sequence[str],
    ) -> None:
        self.price = price
        self.available = available
        self.category = category
        self.category_code = {name: code for code, name in enumerate(categories)}


def allowed_mask(
    arrays: CatalogArrays, index: Mapping[str, int], rules: MerchRules
) -> npt.NDArray[np.bool_]:
    mask = np.ones(arrays.price.size, dtype=bool)
    if rules.available_only is not False:
        mask &= arrays.available
    for item in rules.exclude_items:
        if item in index:
            mask[index[item]] = False
    if rules.exclude_categories:
        codes = [
            arrays.category_code[c] for c in rules.exclude_categories if c in arrays.category_code
        ]
        mask &= ~np.isin(arrays.category, codes)
    if rules.only_categories is not None:
        codes = [
            arrays.category_code[c] for c in rules.only_categories if c in arrays.category_code
        ]
        mask &= np.isin(arrays.category, codes)
    # An item without a known price fails any price bound: it cannot be shown to meet it.
    if rules.min_price is not None:
        mask &= arrays.price >= rules.min_price
    if rules.max_price is not None:
        mask &= arrays.price <= rules.max_price
    return mask
