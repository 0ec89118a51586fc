"""What every part of the publisher shares: Redis errors and script refusals in the
trainer's terms, and the pointer reads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TextIO

from redis.exceptions import OutOfMemoryError, RedisError

from recsvc import model as lay
from recsvc.config import redact_url
from recsvc.experiments.experiment import Experiment
from recsvc.store import backend as storage
from training.errors import (
    LockedError,
    NoModelError,
    RecsvcError,
    StoreFullError,
    StoreUnavailableError,
    TrainingError,
)


def translate(exc: RedisError) -> RecsvcError:
    """Redis's errors in the trainer's terms: out of memory is not an outage."""
    text = redact_url(str(exc))
    if isinstance(exc, OutOfMemoryError) or text.startswith("OOM"):
        return StoreFullError(
            f"Redis is out of memory (maxmemory reached under a noeviction policy): {text}; "
            "the live model is unchanged"
        )
    return StoreUnavailableError(f"redis: {text}")


def refusal(exc: RedisError, what: str) -> RecsvcError:
    """A switch or rollback script's refusal: lost lock, incomplete version, or Redis."""
    text = str(exc)
    if text.startswith("LOCKLOST"):
        return LockedError(f"{what}: {text}")
    if text.split(" ", 1)[0] in ("NOLIVE", "NOCANDIDATE"):
        return NoModelError(f"{what}: {text}")
    if text.split(" ", 1)[0] in ("INCOMPLETE", "NOPREVIOUS", "CHANGED"):
        return TrainingError(f"{what}: {text}")
    return translate(exc)


class PublisherBase:
    """What every part of the publisher shares: its client, layout and scripts (set by
    ``Publisher``), Redis calls in the trainer's terms, and the reads of the pointers."""

    client: storage.SyncClient
    layout: lay.Layout
    storage: storage.SyncBackend
    lock_ttl_ms: int
    on_progress: Callable[[int, int, str], None] | None
    warn: TextIO
    _switch: Any
    _rollback: Any
    _candidate: Any
    _promote: Any
    _abort: Any
    _renew: Any
    _release: Any
    _token: str | None
    _lost: threading.Event

    def live_version(self) -> str | None:
        return self._get(self.layout.live)

    def previous_version(self) -> str | None:
        return self._get(self.layout.previous)

    def candidate_version(self) -> str | None:
        return self._get(self.layout.candidate)

    def experiment(self) -> Experiment | None:
        """The A/B test in force, if any."""
        raw = self._call(self.client.get, self.layout.experiment)
        return None if raw is None else Experiment.decode(raw)

    def prefixes(self) -> list[str]:
        """Every key prefix on this Redis with a live version, sorted."""
        keys = self._call(lambda: list(self.storage.scan(lay.Layout.LIVE_PATTERN)))
        found = {lay.Layout.prefix_of_live(bytes(k).decode()) for k in keys}
        return sorted(p for p in found if p is not None)

    def meta(self, version: str) -> dict[str, Any] | None:
        raw = self._call(self.client.get, self.layout.meta(version))
        return None if raw is None else dict(lay.decode_json(raw))

    def _get(self, key: str) -> str | None:
        raw = self._call(self.client.get, key)
        return None if raw is None else bytes(raw).decode()

    @staticmethod
    def _call(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except RedisError as exc:
            raise translate(exc) from exc
