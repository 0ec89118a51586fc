"""Request and response bodies of the HTTP API.

Limits are part of the contract: a request past them is refused with a 422 that says
which field, rather than served slowly.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from recsvc import model as lay
from recsvc.model.fields import DATETIME_TEXT, ID_NUMBER, TEXT_PATTERN, WHOLE, numeric_id_schema
from recsvc.ranking.rules import MAX_CATEGORY_LENGTH, MerchRules

MAX_K = 100
MAX_CART_ITEMS = 100
MAX_HISTORY_ITEMS = 500
MAX_ITEM_ID_LENGTH = lay.MAX_ITEM_ID_LENGTH


def _id_schema(max_length: int) -> WithJsonSchema:
    """An id's JSON Schema: text within the layout's rule, or a whole number."""
    text = {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": lay.ID_PATTERN}
    return WithJsonSchema(numeric_id_schema(text))


ItemId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ITEM_ID_LENGTH, pattern=lay.ID_PATTERN),
    ID_NUMBER,
    _id_schema(MAX_ITEM_ID_LENGTH),
]
"""An item id: text, or a whole JSON number read as its digits (``85123`` is ``"85123"``)."""
MAX_BATCH = 1000
MAX_CUSTOMER_ID_LENGTH = lay.MAX_CUSTOMER_ID_LENGTH
CustomerId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_CUSTOMER_ID_LENGTH, pattern=lay.ID_PATTERN),
    ID_NUMBER,
    _id_schema(MAX_CUSTOMER_ID_LENGTH),
]
K = Annotated[int, Field(ge=1, le=MAX_K, description="How many suggestions to return."), WHOLE]


MAX_UPSELL_K = 20
MAX_QUANTITY = 1_000_000
"""The largest quantity of one line (and of a repeated item's lines added up)."""


class _Strict(BaseModel):
    """Request bodies: unknown fields refused, and no lax coercion (``true`` is not a
    number, ``"3"`` is not an integer), so what the schema forbids is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class CartLine(_Strict):
    item_id: ItemId
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY), WHOLE] = 1


class Band(_Strict):
    """Alternatives priced from ``min_ratio`` to ``max_ratio`` times the cart item's price;
    a band with min over max holds no price, and gets no upsell."""

    min_ratio: float = Field(default=1.05, gt=0, le=100)
    max_ratio: float = Field(default=2.0, gt=0, le=100)


class CartRequest(_Strict):
    items: list[ItemId | CartLine] = Field(min_length=1, max_length=MAX_CART_ITEMS)
    k: K = 10
    rules: MerchRules | None = Field(default=None, description="Added to the service defaults.")
    upsell_k: Annotated[int, Field(ge=0, le=MAX_UPSELL_K), WHOLE] | None = Field(
        default=None, description="Upsell suggestions (default from settings)."
    )
    upsell_band: Band | None = Field(
        default=None, description="Upsell price band relative to the cart item upgraded."
    )

    def lines(self) -> list[tuple[str, int]]:
        """Items as (id, quantity), a repeated item merged (``merge_lines``)."""
        return merge_lines(
            (e, 1) if isinstance(e, str) else (e.item_id, e.quantity) for e in self.items
        )


def merge_lines(entries: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """Cart lines as (id, quantity), a repeated item merged into one with the quantities
    added (capped at the per-line maximum: past it, more of one item changes no
    suggestion), in the order items first appear."""
    merged: dict[str, int] = {}
    for item_id, quantity in entries:
        merged[item_id] = merged.get(item_id, 0) + quantity
    return [(i, min(q, MAX_QUANTITY)) for i, q in merged.items()]


class Purchase(_Strict):
    item_id: ItemId
    purchased_at: Annotated[datetime, DATETIME_TEXT] | None = Field(
        default=None, strict=False, description="ISO 8601; without a zone it is taken as UTC."
    )
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY), WHOLE] = 1

    @field_validator("purchased_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class HistoryRequest(_Strict):
    purchases: list[Purchase] = Field(min_length=1, max_length=MAX_HISTORY_ITEMS)
    k: K = 10
    exclude_purchased: bool = True
    rules: MerchRules | None = None


class BatchEntry(_Strict):
    """One entry of a batch: a stored customer's id, or a cart's item ids."""

    customer_id: CustomerId | None = None
    items: list[ItemId] | None = Field(default=None, min_length=1, max_length=MAX_CART_ITEMS)

    @model_validator(mode="after")
    def _one_of(self) -> BatchEntry:
        if (self.customer_id is None) == (self.items is None):
            raise ValueError("give exactly one of customer_id or items")
        return self


class BatchRequest(_Strict):
    requests: list[dict[str, object]] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description='Each {"customer_id": ...} or {"items": [...]}; validated one by one, '
        "so one bad entry gets its own error and the rest are answered.",
    )
    k: K = 10
    exclude_purchased: bool = True
    rules: MerchRules | None = None


class StockChange(_Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["available"], "properties": {"available": {"type": "boolean"}}},
                {"required": ["price"], "properties": {"price": {"type": "number"}}},
            ]
        }
    )

    available: bool | None = None
    price: float | None = Field(default=None, ge=0, le=1e9)

    @model_validator(mode="after")
    def _something(self) -> StockChange:
        if self.available is None and self.price is None:
            raise ValueError("give available, price, or both")
        return self


class StockLine(StockChange):
    item_id: ItemId


class StockRequest(_Strict):
    items: list[StockLine] = Field(min_length=1, max_length=10_000)


MAX_TITLE_LENGTH = 500
MAX_URL_LENGTH = 2048


class CatalogItem(_Strict):
    """An item's catalog facts, added or changed between trainings. Every field is
    optional for an update; a new item needs a category to be suggested (beside its
    category's best suggestion) before the next training."""

    title: str | None = Field(default=None, max_length=MAX_TITLE_LENGTH, pattern=TEXT_PATTERN)
    category: str | None = Field(default=None, max_length=MAX_CATEGORY_LENGTH, pattern=TEXT_PATTERN)
    price: float | None = Field(default=None, ge=0, le=1e9)
    available: bool | None = None
    brand: str | None = Field(default=None, max_length=MAX_TITLE_LENGTH, pattern=TEXT_PATTERN)
    image_url: str | None = Field(default=None, max_length=MAX_URL_LENGTH, pattern=TEXT_PATTERN)
    url: str | None = Field(default=None, max_length=MAX_URL_LENGTH, pattern=TEXT_PATTERN)
    currency: str | None = Field(
        default=None, pattern=r"^[A-Z]{3}$", description="The price's ISO 4217 code (EUR)."
    )


class CatalogLine(CatalogItem):
    item_id: ItemId


class CatalogRequest(_Strict):
    items: list[CatalogLine] = Field(min_length=1, max_length=10_000)


class ShownItem(BaseModel):
    """An item as every answer shows it: its rank and its catalog facts."""

    item_id: str
    position: int = Field(description="1-based rank, for click attribution.")
    title: str
    price: float | None
    category: str | None
    brand: str | None = Field(default=None, description="When the catalog gives one.")
    image_url: str | None = Field(default=None, description="When the catalog gives one.")
    url: str | None = Field(
        default=None, description="The product page, when the catalog gives one."
    )
    currency: str | None = Field(
        default=None, description="The price's ISO 4217 code, when the catalog gives one."
    )


class SuggestionOut(ShownItem):
    score: float
    reason: str = Field(description="Why, with the evidence: orders bought together, etc.")
    boosted: bool = False
    because: list[str] = Field(description="The input items this suggestion came from.")
    source: str = Field(
        description="neighbours, repurchase, pinned, new_in_category (an item added since "
        "the last training, placed beside its category's best suggestion), or popular "
        "(filler)."
    )


class UpsellOut(ShownItem):
    upgrades: str = Field(description="The cart item this is a pricier alternative to.")
    price_difference: float
    score: float
    reason: str
    source: str = Field(description="alternatives, or popular (filler within the band).")


ArmOut = Literal["live", "control", "candidate"]
_ARM_DESCRIPTION = (
    "Which arm answered: live (no A/B test applies), or a running test's control (the live "
    "version) or candidate."
)


class CartResponse(BaseModel):
    recommendation_id: str = Field(description="Put it in click URLs to attribute sales.")
    model_version: str
    arm: ArmOut = Field(description=_ARM_DESCRIPTION)
    cross_sell: list[SuggestionOut]
    upsell: list[UpsellOut]
    fallback: bool = Field(description="True when no cart item was known: popular items.")
    upsell_fallback: bool = Field(description="True when every upsell is popular filler.")


class HistoryResponse(BaseModel):
    recommendation_id: str
    model_version: str
    arm: ArmOut = Field(description=_ARM_DESCRIPTION)
    recommendations: list[SuggestionOut]
    fallback: bool


class CustomerResponse(HistoryResponse):
    customer_id: str


class BatchResult(BaseModel):
    index: int
    customer_id: str | None = None
    recommendation_id: str | None = None
    model_version: str | None = None
    arm: ArmOut | None = None
    recommendations: list[SuggestionOut] | None = None
    fallback: bool | None = None
    error: dict[str, object] | None = None


class BatchResponse(BaseModel):
    model_version: str = Field(
        description="The live version; an entry in an A/B test's candidate arm names its own."
    )
    results: list[BatchResult]


class SimilarResponse(BaseModel):
    recommendation_id: str = Field(description="Put it in click URLs to attribute sales.")
    model_version: str
    arm: ArmOut = Field(description=_ARM_DESCRIPTION)
    item_id: str
    similar: list[SuggestionOut] = Field(
        description="The item's neighbours that pass stock and the rules, best first; "
        "fewer than k when fewer pass (no popular filler)."
    )
    fallback: bool = Field(description="Always false: an unknown item is a 404.")


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[dict[str, object]] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class AdminItemResponse(BaseModel):
    model_version: str
    updated: list[str]


class AdminStockResponse(BaseModel):
    model_version: str
    updated: int
    unknown: list[str] = Field(description="Ids the live model does not know (unchanged).")


RecommendationId = Annotated[
    str,
    Field(
        max_length=64,
        pattern=r"^[0-9A-Za-z_-]+$",
        description="An answer's recommendation_id (the links' ``rec``), for attribution.",
    ),
]
Slot = Literal["cross_sell", "upsell", "recommendations"]


class OrderLine(_Strict):
    item_id: ItemId
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY), WHOLE] = 1
    price: float | None = Field(default=None, ge=0, le=1e9, description="Unit price.")
    recommendation_id: RecommendationId | None = Field(
        default=None, description="The answer this line came from (the link's ``rec``)."
    )
    slot: Slot | None = Field(default=None, description="The link's ``slot``.")
    position: Annotated[int, Field(ge=1, le=MAX_K), WHOLE] | None = Field(
        default=None, description="The link's ``pos``."
    )


class OrderEvent(_Strict):
    """One order, as the shop's checkout reports it, at once (``/v1/events/orders``)."""

    order_id: str = Field(min_length=1, max_length=128, pattern=lay.ID_PATTERN)
    customer_id: CustomerId
    items: list[OrderLine] = Field(min_length=1, max_length=MAX_CART_ITEMS)
    purchased_at: Annotated[datetime, DATETIME_TEXT] = Field(
        strict=False, description="ISO 8601 text; without a zone it is taken as UTC."
    )
    recommendation_id: RecommendationId | None = Field(
        default=None,
        description="The answer the order came from (an e-mail's link, say): credits every "
        "line without a recommendation_id of its own.",
    )
    slot: Slot | None = Field(default=None, description="The slot of that answer's link.")

    @field_validator("purchased_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class OrderEventResponse(BaseModel):
    order_id: str
    duplicate: bool = Field(description="The order id was seen before: the event was ignored.")
    attributed_lines: int = Field(
        description="Lines credited to the answer they came from (0 for a duplicate)."
    )
    unknown_recommendations: int = Field(
        description="Lines naming a recommendation_id that is no answer of recsvc's: kept "
        "with the order, credited to nothing."
    )


class CatalogResponse(BaseModel):
    model_version: str
    updated: list[str]
    new: list[str] = Field(
        description="Ids the live model was not trained on: suggested as new in their "
        "category until a training knows them."
    )


class DeletedResponse(BaseModel):
    model_version: str
    deleted: list[str]


class ErasedResponse(BaseModel):
    erased: list[str]
    versions: list[str] = Field(description="Stored versions that held a history erased.")


class AuditResponse(BaseModel):
    entries: list[dict[str, Any]] = Field(
        description="Newest first: id, at (ISO 8601 in UTC: 2026-12-04T21:19:41.123Z), "
        "actor, action, ids (and versions)."
    )


class ModelInfo(BaseModel):
    """The live version's metadata: counts, parameters, evaluation, manifest and more."""

    model_config = ConfigDict(extra="allow")

    model_version: str


class Liveness(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    model_version: str
    warnings: list[str] = Field(
        description="What may break serving soon: an evicting maxmemory-policy, a full Redis."
    )


class NotReady(BaseModel):
    status: str
    error: ErrorBody
