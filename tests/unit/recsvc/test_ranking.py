from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from recsvc.ranking import (
    FEW_SEEDS,
    SOURCE_NEIGHBOURS,
    SOURCE_POPULAR,
    SOURCE_REPURCHASE,
    PriceBand,
    Rules,
    Seed,
    Suggestion,
    band_alternatives,
    rank,
    recency_weights,
    upsell,
)
from recsvc.ranking.cart import _rank_few, _rank_many

ITEMS = ["a", "b", "c", "d", "e", "f"]
POPULAR = np.array([5, 4, 3, 2, 1, 0], dtype=np.int64)


def seed(item: str, neighbours: dict[str, float], weight: float = 1.0) -> Seed:
    idx = np.array([ITEMS.index(n) for n in neighbours], dtype=np.int64)
    return Seed(
        item, ITEMS.index(item), weight, idx, np.array(list(neighbours.values()), np.float32)
    )


def test_scores_add_up_across_seeds_and_name_the_seeds_behind_them() -> None:
    seeds = [seed("a", {"c": 0.5, "d": 0.4}), seed("b", {"d": 0.3, "e": 0.6})]
    out = rank(seeds, ITEMS, POPULAR, Rules(k=3, exclude={0, 1}))
    assert [s.item_id for s in out.suggestions] == ["d", "e", "c"]
    assert out.suggestions[0].score == np.float32(0.4) + np.float32(0.3)
    assert out.suggestions[0].because == ("a", "b")  # a contributed more than b
    assert out.suggestions[1].because == ("b",)
    assert not out.fallback


def test_seed_weights_scale_their_contribution() -> None:
    seeds = [seed("a", {"c": 0.5}, weight=0.1), seed("b", {"d": 0.3}, weight=1.0)]
    out = rank(seeds, ITEMS, POPULAR, Rules(k=2, exclude={0, 1}))
    assert [s.item_id for s in out.suggestions] == ["d", "c"]


def test_never_suggests_an_excluded_item() -> None:
    seeds = [seed("a", {"b": 0.9, "c": 0.5}), seed("b", {"a": 0.9, "c": 0.1})]
    out = rank(seeds, ITEMS, POPULAR, Rules(k=5, exclude={0, 1}))
    ids = [s.item_id for s in out.suggestions]
    assert "a" not in ids and "b" not in ids
    assert ids[0] == "c"


def test_short_lists_are_filled_with_popular_items_marked_as_such() -> None:
    out = rank([seed("a", {"b": 0.9})], ITEMS, POPULAR, Rules(k=4, exclude={0}))
    assert [s.item_id for s in out.suggestions] == ["b", "f", "e", "d"]
    assert [s.source for s in out.suggestions] == [SOURCE_NEIGHBOURS] + [SOURCE_POPULAR] * 3
    assert not out.fallback


def test_no_known_seed_is_a_fallback_to_popular() -> None:
    out = rank([], ITEMS, POPULAR, Rules(k=2, exclude={5}))
    assert [s.item_id for s in out.suggestions] == ["e", "d"]
    assert out.fallback


def test_repurchase_weight_scores_the_seeds_themselves() -> None:
    seeds = [seed("a", {"c": 0.2}, weight=1.0)]
    out = rank(seeds, ITEMS, POPULAR, Rules(k=2, repurchase_weight=0.5))
    assert [(s.item_id, s.source) for s in out.suggestions] == [
        ("a", SOURCE_REPURCHASE),
        ("c", SOURCE_NEIGHBOURS),
    ]


def test_ties_break_by_index_so_answers_are_stable() -> None:
    seeds = [seed("a", {"e": 0.5, "c": 0.5, "d": 0.5})]
    first = rank(seeds, ITEMS, POPULAR, Rules(k=3, exclude={0}))
    assert [s.item_id for s in first.suggestions] == ["c", "d", "e"]


def test_because_is_limited() -> None:
    seeds = [seed(i, {"f": 0.1 * (n + 1)}) for n, i in enumerate("abcde")]
    out = rank(seeds, ITEMS, POPULAR, Rules(k=1, because_limit=2))
    assert out.suggestions[0].because == ("e", "d")


def test_recency_weights_halve_per_half_life_from_the_latest_purchase() -> None:
    now = datetime(2024, 5, 1, tzinfo=UTC)
    weights = recency_weights([now, now - timedelta(days=30), None, now - timedelta(days=60)], 30)
    assert weights == [1.0, 0.5, 1.0, 0.25]
    assert recency_weights([None, None], 30) == [1.0, 1.0]


def test_repurchase_bonus_ranks_every_bought_item_above_neighbour_evidence() -> None:
    seeds = [seed("a", {"c": 0.9}, weight=1.0), seed("b", {"c": 0.9}, weight=0.001)]
    rules = Rules(k=3, repurchase_weight=0.1, repurchase_bonus=10.0)
    out = rank(seeds, ITEMS, POPULAR, rules)
    assert [s.item_id for s in out.suggestions] == ["a", "b", "c"]


def _random_seeds(rng: np.random.Generator, n_items: int, n_seeds: int) -> list[Seed]:
    """Seeds over a catalog of ``n_items``, each list naming an item once (never the seed
    itself), best first."""
    picked = rng.choice(n_items, n_seeds, replace=False)
    out = []
    for at in picked.tolist():
        size = int(rng.integers(0, 60))
        drawn = rng.integers(0, n_items, 2 * size + 2)
        drawn = drawn[drawn != at]
        _, first = np.unique(drawn, return_index=True)
        idx = drawn[np.sort(first)][:size].astype(np.int64)
        size = idx.size
        scores = np.sort(rng.normal(0.1, 0.3, size))[::-1].copy()
        counts = rng.integers(0, 50, size).astype(np.int64)
        weight = float(rng.choice([1.0, 1.0, 1.5, 0.4]))
        out.append(Seed(f"i{at}", at, weight, idx, scores, counts))
    return out


def _reference(seeds: list[Seed], items: list[str], rules: Rules) -> list[tuple[object, ...]]:
    """The ranking's definition, one entry at a time in plain Python: each candidate's
    total of weight x score over the seeds (in their order), the rules, the best ``room``,
    the seeds behind each and the evidence of the strongest."""
    totals: dict[int, float] = {}
    cells: dict[int, list[tuple[float, int, int]]] = {}  # (-contribution, seed, count)
    drop = not rules.negatives and not all(s.positive_only for s in seeds)
    entries = [
        (j, s.weight * sc, o, n)
        for o, s in enumerate(seeds)
        for j, sc, n in zip(s.indices.tolist(), s.scores.tolist(), _counts_of(s), strict=True)
    ]
    if drop:
        entries = [e for e in entries if e[1] > 0]
    if rules.repurchase_weight > 0:
        entries += [
            (s.index, s.weight * rules.repurchase_weight + rules.repurchase_bonus, o, 0)
            for o, s in enumerate(seeds)
        ]
    for j, c, o, n in entries:
        totals[j] = totals.get(j, 0.0) + c
        cells.setdefault(j, []).append((-c, o, n))
    ok = {
        j: t * rules.boost.get(j, 1.0)
        for j, t in totals.items()
        if t > 0 and j not in rules.exclude and (rules.allowed is None or bool(rules.allowed[j]))
    }
    room = (rules.k + len(rules.pins)) * (4 if rules.max_per_category is not None else 1)
    best = sorted(ok, key=lambda j: (-ok[j], j))[:room]
    seed_indices = {s.index for s in seeds}
    out: list[tuple[object, ...]] = []
    for j in best:
        strongest = sorted(cells[j])
        because = tuple(seeds[o].item_id for c, o, _ in strongest[: rules.because_limit] if c < 0)
        source = SOURCE_REPURCHASE if j in seed_indices else SOURCE_NEIGHBOURS
        evidence = strongest[0][2] if because else 0
        out.append((items[j], ok[j], because, source, evidence, j in rules.boost, j))
    return out


def _counts_of(seed: Seed) -> list[int]:
    return [0] * seed.indices.size if seed.counts is None else seed.counts.tolist()


def _facts(suggestions: list[tuple[Suggestion, int]]) -> list[tuple[object, ...]]:
    return [
        (s.item_id, s.score, s.because, s.source, s.evidence, s.boosted, i) for s, i in suggestions
    ]


@pytest.mark.parametrize("many", [False, True])
def test_both_ranking_paths_give_the_definitions_answer(many: bool) -> None:
    """Carts of up to FEW_SEEDS items take ``_rank_few``, histories ``_rank_many``: both
    must give the reference's suggestions, scores, seeds behind them and evidence,
    whatever the rules (repurchase, negatives, stock, exclusions, boosts, category caps)."""
    rng = np.random.default_rng(7 + many)
    catalogs = {n: [f"i{i}" for i in range(n)] for n in (300, 100_000)}
    checked = 0
    for trial in range(300):
        # A large catalog finds a history's candidates from its entries, a small one by
        # scanning the scratch totals (``SCAN_PER_ENTRY``): both ways are checked.
        n_items = 300 if trial % 2 else 100_000
        items = catalogs[n_items]
        n_seeds = int(rng.integers(FEW_SEEDS + 1, 120) if many else rng.integers(1, FEW_SEEDS + 1))
        seeds = _random_seeds(rng, n_items, n_seeds)
        if trial % 5 == 0:
            for s in seeds:
                s.positive_only = bool(np.all(s.scores > 0))
        exclude = {s.index for s in seeds} if trial % 3 else set(rng.choice(n_items, 5).tolist())
        rules = Rules(
            k=int(rng.choice([0, 1, 3, 10, 40])),
            exclude=exclude,
            allowed=rng.random(n_items) > 0.2 if trial % 2 else None,
            category=rng.integers(-1, 6, n_items),
            max_per_category=[None, 1, 3][trial % 3],
            because_limit=int(rng.choice([1, 3])),
            negatives=trial % 4 != 0,
            repurchase_weight=float(trial % 3 == 0) if many else 0.0,
            repurchase_bonus=2.0 if many and trial % 6 == 0 else 0.0,
            boost={int(rng.integers(n_items)): 3.0} if many and trial % 7 == 0 else {},
        )
        ranked = (_rank_many if many else _rank_few)(seeds, items, set(exclude), rules)
        assert _facts(ranked) == _reference(seeds, items, rules), trial
        checked += bool(ranked)
    assert checked > 200


def test_upsell_from_kept_qualifying_alternatives_is_the_same_upsell() -> None:
    rng = np.random.default_rng(3)
    n_items = 200
    items = [f"i{i}" for i in range(n_items)]
    price = rng.uniform(1, 20, n_items)
    price[rng.choice(n_items, 10)] = np.nan
    margin = rng.normal(0.2, 0.3, n_items)
    popular = rng.permutation(n_items).astype(np.int64)
    answered = 0
    for trial in range(200):
        sources = _random_seeds(rng, n_items, int(rng.integers(1, 5)))
        category = rng.integers(-1, 3, n_items)
        band = PriceBand(1.05, float(rng.choice([1.5, 2.0, 4.0])))
        rules = Rules(
            k=int(rng.choice([1, 3])), exclude={s.index for s in sources}, category=category
        )
        m = margin if trial % 2 else None
        kept = [band_alternatives(s, price, category, band, m) for s in sources]
        for alternatives in kept:  # in band, best first
            assert [a[0] for a in alternatives] == sorted(a[0] for a in alternatives)
        direct = upsell(sources, items, popular, price, rules, band, m)
        assert upsell(sources, items, popular, price, rules, band, m, kept) == direct
        answered += any(u.source != SOURCE_POPULAR for u in direct)
    assert answered > 100
