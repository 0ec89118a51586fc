"""What the service holds of a version: its ``ModelView`` (item index, popularity,
catalog arrays, masks per merchandising rules), the lists it keeps per version within a
byte bound, and the decoded values a read returns (``ItemList``, ``StoredHistory``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from recsvc import model as lay
from recsvc.errors import StoreUnavailableError
from recsvc.ranking import Ranking, UpsellEntry
from recsvc.ranking.rules import CatalogArrays, MerchRules, allowed_mask
from recsvc.store.cache import ByteBoundedCache

DEFAULT_MASK_CACHE_BYTES = 16 << 20


_ENTRY_OVERHEAD = 200
"""Bytes of a cached mask beyond its array: key, tuple, array header."""


@dataclass(frozen=True)
class ModelView:
    """Everything about one version that is not fetched per request."""

    version: str
    meta: dict[str, Any]
    item_ids: tuple[str, ...]
    index: dict[str, int]
    popular: lay.IntArray
    popular_counts: dict[int, int]
    catalog: tuple[dict[str, Any], ...]
    """Per item: title, category, price, available and extras, stock changes applied."""
    arrays: CatalogArrays
    margin: npt.NDArray[np.float64] | None
    """Per item, when the catalog gives margins."""
    stock_epoch: bytes | None
    model_items: int = 0
    """How many of ``item_ids`` the version was trained on (they lead); the rest were added
    since, by the admin API, and have no lists."""
    fresh: tuple[int, ...] = ()
    """Items added by the admin API that this version was not trained on (indices past the
    model's own items), newest first: placed among their category's suggestions."""
    masks: ByteBoundedCache[bytes, npt.NDArray[np.bool_]] = field(
        default_factory=lambda: ByteBoundedCache(DEFAULT_MASK_CACHE_BYTES)
    )
    """Allowed-item masks by rules, computed once per view (a stock change makes a new
    one), keyed by a digest of the rules and bounded in bytes: rules come from requests."""
    upsell_lists: ByteBoundedCache[tuple[int, float, float], list[UpsellEntry]] = field(
        default_factory=lambda: ByteBoundedCache(DEFAULT_MASK_CACHE_BYTES)
    )
    """Per cart item and price band, its alternatives that qualify for the upsell slot
    (``ranking.band_alternatives``): they depend on this view's prices, so kept per view,
    bounded in bytes like the masks."""
    default_rule_parts: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per suggested item, its catalog facts as rendered (bounded by the catalog)."""
    """The ranking rules of a request without rules of its own, made once per view."""

    @classmethod
    def from_blobs(
        cls,
        version: str,
        meta: bytes,
        items: bytes,
        popular: bytes,
        catalog: bytes | None = None,
        stock: dict[bytes, bytes] | None = None,
        stock_epoch: bytes | None = None,
        mask_cache_bytes: int = DEFAULT_MASK_CACHE_BYTES,
        added: dict[bytes, bytes] | None = None,
        deleted: Collection[bytes] = (),
    ) -> ModelView:
        decoded_meta = lay.decode_json(meta)
        lay.check_format(decoded_meta)
        model_ids: list[str] = list(lay.decode_json(items))
        popular_idx, _, popular_counts = lay.decode_lists(popular)
        index = {item: i for i, item in enumerate(model_ids)}
        facts: list[dict[str, Any]] = (
            [dict(f) for f in lay.decode_json(catalog)]
            if catalog
            else [{"title": "", "available": True} for _ in model_ids]
        )
        if len(facts) != len(model_ids):
            raise ValueError("catalog and items differ in length")
        # Catalog changes between trainings: facts of known items overridden, new items
        # appended past the model's own (no lists of their own: placed by category).
        fresh: list[tuple[float, int]] = []
        for raw_item, raw_facts in sorted((added or {}).items()):
            item, entry = raw_item.decode(), dict(lay.decode_json(raw_facts))
            at = index.get(item)
            if at is None:
                at = index[item] = len(model_ids)
                model_ids.append(item)
                facts.append({"title": "", "available": True})
                fresh.append((-float(entry.get("added_at", 0.0)), at))
            facts[at].update({k: v for k, v in entry.items() if k != "added_at"})
        for raw_item, raw_change in (stock or {}).items():
            at = index.get(raw_item.decode())
            if at is not None:
                facts[at].update(lay.decode_json(raw_change))
        for raw_item in deleted:
            at = index.get(raw_item.decode())
            if at is not None:
                facts[at]["available"] = False  # never suggested
        gone = {index[r.decode()] for r in deleted if r.decode() in index}
        model_items = len(facts) - len(fresh)
        item_ids = tuple(model_ids)
        categories = sorted({str(f["category"]) for f in facts if f.get("category")})
        code = {c: n for n, c in enumerate(categories)}
        arrays = CatalogArrays(
            price=np.array([float(f.get("price", np.nan)) for f in facts], dtype=np.float64),
            available=np.array([bool(f.get("available", True)) for f in facts], dtype=bool),
            category=np.array([code.get(str(f.get("category")), -1) for f in facts], np.int64),
            categories=categories,
        )
        margin = None
        if any("margin" in f for f in facts):
            margin = np.array([float(f.get("margin", np.nan)) for f in facts], dtype=np.float64)
        return cls(
            version=version,
            meta=decoded_meta,
            item_ids=item_ids,
            index=index,
            popular=popular_idx,
            popular_counts=dict(zip(popular_idx.tolist(), popular_counts.tolist(), strict=True)),
            catalog=tuple(facts),
            arrays=arrays,
            margin=margin,
            stock_epoch=stock_epoch,
            model_items=model_items,
            fresh=tuple(at for _, at in sorted(fresh) if at not in gone),
            masks=ByteBoundedCache(mask_cache_bytes),
            upsell_lists=ByteBoundedCache(mask_cache_bytes),
        )

    def allowed(self, rules: MerchRules) -> npt.NDArray[np.bool_]:
        key = hashlib.blake2b(rules.model_dump_json().encode(), digest_size=16).digest()
        mask = self.masks.get(key)
        if mask is None:
            mask = allowed_mask(self.arrays, self.index, rules)
            self.masks.put(key, mask, mask.nbytes + _ENTRY_OVERHEAD)
        return mask


@dataclass(frozen=True, slots=True)
class ItemList:
    """One item's decoded neighbour list: indices, weights, evidence counts, best first."""

    indices: lay.IntArray
    scores: npt.NDArray[np.float64]
    """Widened from the packed float32 once, when decoded, not on every request."""
    counts: lay.IntArray
    positive: ItemList | None = None
    """The entries with a positive weight, as views into these arrays (lists are best
    first, so they lead): a history ranks only these, half of an EASE list. Made once,
    when decoded; None on the positive part itself."""

    @classmethod
    def decode(cls, blob: bytes) -> ItemList:
        try:
            indices, scores, counts = lay.decode_lists(blob)
        except ValueError as exc:
            raise StoreUnavailableError(f"corrupt neighbour list: {exc}") from exc
        wide = scores.astype(np.float64)
        positive = wide > 0
        n = int(positive.sum())
        if not positive[:n].all():  # not best first: put the positive ones first
            order = np.concatenate([np.flatnonzero(positive), np.flatnonzero(~positive)])
            indices, wide, counts = indices[order], wide[order], counts[order]
        return cls(indices, wide, counts, cls(indices[:n], wide[:n], counts[:n]))

    @property
    def nbytes(self) -> int:
        return int(self.indices.nbytes + self.scores.nbytes + self.counts.nbytes) + _LIST_OVERHEAD


_LIST_OVERHEAD = 400
"""Bytes of a cached list beyond its arrays: three array headers, the key, the entry."""


DEFAULT_LIST_CACHE_BYTES = 64 << 20


class _VersionLists:
    """Decoded lists of one version, by item id, bounded in bytes (popular items stay)."""

    def __init__(self, max_bytes: int) -> None:
        half = max_bytes // 2
        self.complements: ByteBoundedCache[str, ItemList] = ByteBoundedCache(half)
        self.alternatives: ByteBoundedCache[str, ItemList] = ByteBoundedCache(half)

    def keep(
        self, kind: ByteBoundedCache[str, ItemList], ids: Sequence[str], blobs: Sequence[Any]
    ) -> dict[str, ItemList | None]:
        out: dict[str, ItemList | None] = {}
        for item, blob in zip(ids, blobs, strict=True):
            if blob is None:
                out[item] = None
                continue
            decoded = kind.get(item)
            if decoded is None:
                decoded = ItemList.decode(blob)
                kind.put(item, decoded, decoded.nbytes)
            out[item] = decoded
        return out


@dataclass(frozen=True)
class Lists:
    """A fetch: the view it came from, and per requested item its decoded lists."""

    view: ModelView
    complements: list[ItemList | None]
    alternatives: list[ItemList | None]


@dataclass(frozen=True)
class CustomerQuery:
    customer_id: str


@dataclass(frozen=True)
class StoredHistory:
    item_ids: list[str]
    """Newest first."""
    days: list[int]
    """Day of each item's latest purchase, since 1970-01-01 (-1: undated)."""
    counts: list[int] = field(default_factory=list)
    """Orders each item was bought in (empty: once each)."""
    picks: bytes | None = None
    """The trainer's ranked suggestions for this history, packed (``model.Picks``;
    decoded only when served). None: none stored, or live order events changed it."""
    merged: bool = False
    """Live order events added to the stored history (its picks no longer hold)."""

    @classmethod
    def decode(cls, blob: bytes) -> StoredHistory:
        head, picks = lay.split_history(blob)
        try:
            return cls(*lay.decode_history(head), picks=picks)
        except (ValueError, TypeError, IndexError) as exc:
            raise StoreUnavailableError(f"corrupt stored history: {exc}") from exc

    @property
    def last_day(self) -> int:
        return max(self.days, default=-1)

    def count_list(self) -> list[int]:
        return self.counts if self.counts else [1] * len(self.item_ids)

    def before(self, older: StoredHistory | None, cap: int) -> StoredHistory:
        """These (live order events') items ahead of ``older`` (a stored history), each
        item once, at most ``cap``: the history the next training would store. An item in
        both adds the older history's orders to the new ones."""
        mine = self.count_list()
        if older is None:
            return StoredHistory(self.item_ids[:cap], self.days[:cap], mine[:cap], merged=True)
        earlier = dict(zip(older.item_ids, older.count_list(), strict=True))
        seen = set(self.item_ids)
        items, days = list(self.item_ids), list(self.days)
        counts = [n + earlier.get(i, 0) for i, n in zip(items, mine, strict=True)]
        for item, day, n in zip(older.item_ids, older.days, older.count_list(), strict=True):
            if item not in seen and len(items) < cap:
                seen.add(item)
                items.append(item)
                days.append(day)
                counts.append(n)
        return StoredHistory(items[:cap], days[:cap], counts[:cap], merged=True)


AnswerWith = Callable[[ModelView, StoredHistory], Ranking | None]
"""A stored customer's answer from the history alone (its picks), or None: rank online."""


@dataclass(frozen=True)
class Fetched:
    history: StoredHistory | None
    lists: list[ItemList | None]
    ranked: Ranking | None = None
    """The answer made without lists (a stored customer's picks): ``lists`` is empty."""
