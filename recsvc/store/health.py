"""What readiness reports: the live version checked key by key against its manifest, and
Redis's memory policy and headroom (a policy that may evict the model, a full Redis)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from recsvc.errors import ModelIncompleteError

if TYPE_CHECKING:
    from recsvc.store.reader import ModelStore
    from recsvc.store.view import ModelView


@dataclass(frozen=True)
class Health:
    view: ModelView
    warnings: list[str]


async def readiness(store: ModelStore) -> Health:
    """What readiness reports: the live version checked key by key against its
    manifest (no cache: an evicting Redis may have taken a key since it was loaded),
    and Redis's memory policy and headroom."""
    problems: list[str] = []
    warnings: list[str] = []
    masters = await store.backend.memory()
    for info in masters:
        policy = str(info.get("maxmemory_policy", ""))
        if policy.startswith("allkeys-"):
            warnings.append(
                f"maxmemory-policy is {policy}: Redis may evict keys of the live model; "
                "use noeviction"
            )
        limit, used = int(info.get("maxmemory", 0) or 0), int(info.get("used_memory", 0))
        if limit and used >= limit and policy == "noeviction":
            warnings.append(
                f"Redis is at maxmemory ({used:,} of {limit:,} bytes): it refuses writes "
                "(stock changes, the next publish)"
            )
    warnings = list(dict.fromkeys(warnings))
    view = await store.live_view()
    problems = await store.verify(view.version, view.meta)
    if problems:
        raise ModelIncompleteError(
            f"live model {view.version} is incomplete: {'; '.join(problems)}; roll back "
            "(python -m training rollback) or retrain"
        )
    return Health(view, warnings)
