"""The trainer-service contract: what a published model is in Redis.

The trainer writes through this package and the service reads through it, so the two
cannot disagree on the format (gorse keeps its cache keys in one file for the same
reason). One module per concept:

- ``keys``: key names (``Layout``), on a single node and on a cluster;
- ``codecs``: packed neighbour lists, stored histories, JSON;
- ``manifest``: the format version and what a complete version holds;
- ``values``: the typed values stored beside the lists (``CatalogFacts``, ``Serving``);
- ``ids``: what an item or customer id may be;
- ``fields``: the catalog's field rules;
- ``scripts``: the Lua scripts (``scripts/*.lua``) that read and move pointers atomically.
"""

from recsvc.model.codecs import (
    ERASED_HISTORY,
    NEIGHBOUR_DTYPE,
    PICKS_SEPARATOR,
    Blob,
    FloatArray,
    IntArray,
    Picks,
    decode_history,
    decode_json,
    decode_lists,
    decode_pairs,
    decode_picks,
    encode_history,
    encode_json,
    encode_pairs,
    encode_picks,
    score_precision,
    split_history,
)
from recsvc.model.ids import ID_PATTERN, MAX_CUSTOMER_ID_LENGTH, MAX_ITEM_ID_LENGTH, valid_id
from recsvc.model.keys import (
    AUDIT_MAX_ENTRIES,
    BUCKETED_PARTS,
    CLUSTER_BUCKETS,
    EXPERIMENTS_KEPT,
    SALES_DAYS_KEPT,
    Layout,
    new_version,
    today,
)
from recsvc.model.manifest import (
    FORMAT_VERSION,
    MANIFEST_PARTS,
    REQUIRED_PARTS,
    ManifestEntry,
    UnknownFormatError,
    check_format,
    manifest_of,
)
from recsvc.model.scripts import (
    ABORT_SCRIPT,
    CANDIDATE_SCRIPT,
    CUSTOMERS_SCRIPT,
    FETCH_SCRIPT,
    ORDER_EVENT_SCRIPT,
    PROMOTE_SCRIPT,
    RELEASE_LOCK_SCRIPT,
    RENEW_LOCK_SCRIPT,
    ROLLBACK_SCRIPT,
    SWITCH_SCRIPT,
)
from recsvc.model.values import HISTORY_RECIPES, CatalogFacts, Serving, StockChange

__all__ = [
    "ABORT_SCRIPT",
    "AUDIT_MAX_ENTRIES",
    "BUCKETED_PARTS",
    "CANDIDATE_SCRIPT",
    "CLUSTER_BUCKETS",
    "CUSTOMERS_SCRIPT",
    "ERASED_HISTORY",
    "EXPERIMENTS_KEPT",
    "FETCH_SCRIPT",
    "FORMAT_VERSION",
    "HISTORY_RECIPES",
    "ID_PATTERN",
    "MANIFEST_PARTS",
    "MAX_CUSTOMER_ID_LENGTH",
    "MAX_ITEM_ID_LENGTH",
    "NEIGHBOUR_DTYPE",
    "ORDER_EVENT_SCRIPT",
    "PICKS_SEPARATOR",
    "PROMOTE_SCRIPT",
    "RELEASE_LOCK_SCRIPT",
    "RENEW_LOCK_SCRIPT",
    "REQUIRED_PARTS",
    "ROLLBACK_SCRIPT",
    "SALES_DAYS_KEPT",
    "SWITCH_SCRIPT",
    "Blob",
    "CatalogFacts",
    "FloatArray",
    "IntArray",
    "Layout",
    "ManifestEntry",
    "Picks",
    "Serving",
    "StockChange",
    "UnknownFormatError",
    "check_format",
    "decode_history",
    "decode_json",
    "decode_lists",
    "decode_pairs",
    "decode_picks",
    "encode_history",
    "encode_json",
    "encode_pairs",
    "encode_picks",
    "manifest_of",
    "new_version",
    "score_precision",
    "split_history",
    "today",
    "valid_id",
]
