"""A trainer's publish stage as its own process, for tests that kill it.

``python -m tests.publish_worker REDIS_URL PREFIX ITEMS CUSTOMERS SCORE`` publishes a
synthetic model whose every neighbour score is ``SCORE`` (a fingerprint of the version),
printing ``progress done total what`` lines as it writes, then ``published VERSION``.
"""

from __future__ import annotations

import sys

import numpy as np
import redis

from recsvc.model import Layout
from training.neighbours.base import Neighbours
from training.publish import ModelPayload, Publisher


def payload(items: int, customers: int, score: float) -> ModelPayload:
    rng = np.random.default_rng(0)
    ids = [f"item-{i:06d}" for i in range(items)]
    neighbours = rng.integers(0, items, size=(items, 20))
    histories = {
        f"customer-{c:07d}": (
            [ids[int(i)] for i in rng.integers(0, items, 5)],
            [19000] * 5,
            [1] * 5,
        )
        for c in range(customers)
    }
    return ModelPayload(
        item_ids=ids,
        neighbours=Neighbours(neighbours, np.full((items, 20), score, np.float32)),
        popular_indices=np.arange(min(items, 50)),
        popular_scores=np.ones(min(items, 50), np.float32),
        meta={"counts": {"items": items, "customers": customers}},
        histories=histories,
    )


def main(argv: list[str]) -> int:
    url, prefix, items, customers, score = argv
    client = redis.Redis.from_url(url)

    def progress(done: int, total: int, what: str) -> None:
        print(f"progress {done} {total} {what}", flush=True)

    publisher = Publisher(client, Layout(prefix), on_progress=progress)
    version = publisher.publish(payload(int(items), int(customers), float(score)))
    print(f"published {version}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
