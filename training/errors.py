"""Trainer errors, each with the exit code cron sees (documented in README.md)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_REDIS_UNAVAILABLE = 3
EXIT_LOCKED = 4
EXIT_REFUSED = 5
EXIT_REDIS_FULL = 6
EXIT_NO_MODEL = 7


class TrainingError(Exception):
    exit_code = EXIT_FAILED


class InputError(TrainingError):
    """The purchases, a column mapping or a flag cannot be used; nothing was published."""

    exit_code = EXIT_BAD_INPUT


class StoreUnavailableError(TrainingError):
    exit_code = EXIT_REDIS_UNAVAILABLE


class LockedError(TrainingError):
    """Another trainer holds the publisher lock."""

    exit_code = EXIT_LOCKED


class RefusedError(TrainingError):
    """The quality gate refused the candidate; the live model stays."""

    exit_code = EXIT_REFUSED


class StoreFullError(TrainingError):
    """Redis refuses writes: ``maxmemory`` reached under ``noeviction``, or the version
    would not fit in what is left. Nothing was switched; the live model stays."""

    exit_code = EXIT_REDIS_FULL


class NoModelError(TrainingError):
    """Nothing to act on: no live model, or no previous version to roll back to."""

    exit_code = EXIT_NO_MODEL
