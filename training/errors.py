"""The trainer's errors: recsvc's one hierarchy (``recsvc.errors``, which draws it), each
with the exit code cron sees (documented in README.md)."""

from __future__ import annotations

from recsvc.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_NO_MODEL,
    EXIT_OK,
    EXIT_REDIS_FULL,
    EXIT_REDIS_UNAVAILABLE,
    EXIT_REFUSED,
    InputError,
    LockedError,
    NoModelError,
    RecsvcError,
    RefusedError,
    StoreFullError,
    StoreUnavailableError,
    TrainingError,
)

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_LOCKED",
    "EXIT_NO_MODEL",
    "EXIT_OK",
    "EXIT_REDIS_FULL",
    "EXIT_REDIS_UNAVAILABLE",
    "EXIT_REFUSED",
    "InputError",
    "LockedError",
    "NoModelError",
    "RecsvcError",
    "RefusedError",
    "StoreFullError",
    "StoreUnavailableError",
    "TrainingError",
]
