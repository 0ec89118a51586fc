"""Redis access: everything the service reads and writes, on a single node or a cluster.

- ``backend``: how a model's keys are read and written on each kind of Redis, and
  Redis errors in the service's terms (``unavailable``);
- ``reader``: ``ModelStore``, the read path (one round trip a request) and its caches;
- ``view``: what the service holds of a version (``ModelView``) and the values a read
  returns;
- ``admin``: stock, catalog and erasure changes between trainings, audited;
- ``events``: live order events;
- ``health``: readiness (the live version against its manifest, Redis's memory);
- ``cache``: the byte-bounded cache the views keep masks and lists in;
- ``embedded``, ``localcluster``: a redis-server of the service's own, one node or a
  local cluster, for the demo and the tests.
"""

from recsvc.store.admin import CatalogAdmin
from recsvc.store.backend import unavailable
from recsvc.store.events import OrderEvents
from recsvc.store.health import Health, readiness
from recsvc.store.reader import ModelStore
from recsvc.store.view import (
    AnswerWith,
    CustomerQuery,
    Fetched,
    ItemList,
    Lists,
    ModelView,
    StoredHistory,
)

__all__ = [
    "AnswerWith",
    "CatalogAdmin",
    "CustomerQuery",
    "Fetched",
    "Health",
    "ItemList",
    "Lists",
    "ModelStore",
    "ModelView",
    "OrderEvents",
    "StoredHistory",
    "readiness",
    "unavailable",
]
