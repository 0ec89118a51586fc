"""Each stored customer's suggestions, ranked in the trainer (``recsvc.answers.picks``).

The e-mail generator asks for thousands of stored customers a run; ranking each history
on request reads some 10,000 list entries a customer. The trainer ranks every stored
history once, by the service's own function over the lists exactly as the service
decodes them, and stores the best N beside the history: the service then filters and cuts
them, reading no list. Both engines encode a customer's stored value through ``PickMaker``
(the local publisher in its process, the Spark executors each their partitions).
"""

from __future__ import annotations

from collections.abc import Sequence

from recsvc import model as lay
from recsvc.answers.picks import PickRecipe, make_picks
from recsvc.store import ItemList, StoredHistory
from training.neighbours.base import Neighbours


class PickMaker:
    """Encodes stored histories with their picks, decoding each item's list once, from
    the bytes the publisher writes for it (so the picks rank what the service reads)."""

    def __init__(self, recipe: PickRecipe, item_ids: Sequence[str], neighbours: Neighbours) -> None:
        self.recipe = recipe
        self.item_ids = list(item_ids)
        self.index = {item: i for i, item in enumerate(self.item_ids)}
        self.neighbours = neighbours
        self._lists: dict[str, ItemList] = {}
        self.picked = 0
        """Histories given picks so far (the others: no item of theirs has a list)."""

    def list_of(self, item: str) -> ItemList | None:
        kept = self._lists.get(item)
        if kept is None:
            i = self.index.get(item)
            if i is None:
                return None
            idx, sc = self.neighbours.row(i)
            blob = lay.encode_pairs(idx, sc, self.neighbours.counts_row(i))
            kept = self._lists[item] = ItemList.decode(blob)
        return kept

    def value(self, items: Sequence[str], days: Sequence[int], counts: Sequence[int]) -> bytes:
        """A customer's stored value: the history, then its picks."""
        head = lay.encode_history(items, days, counts)
        history = StoredHistory(list(items), [int(d) for d in days], [int(c) for c in counts])
        picks = make_picks(self.recipe, self.index, self.item_ids, history, self.list_of)
        if picks is None:
            return head
        self.picked += 1
        return head + lay.PICKS_SEPARATOR + picks
