"""recsvc's errors, one hierarchy for the service and the trainer.

Each class carries what it means at either boundary: ``status_code`` and ``code`` for
the HTTP API (one handler per class, ``recsvc.api.app``), ``exit_code`` for a command
(documented in README.md, what cron sees). Redis and decoding errors are translated into
these where they happen (``raise ... from exc``: ``recsvc.store.backend.unavailable`` for
the service, ``training.publish.base.translate`` for the trainer)::

    RecsvcError                      500 internal_error     exit 1
    ├── StoreUnavailableError        503 store_unavailable  exit 3
    │   ├── OverloadedError          503 overloaded         exit 3
    │   └── StoreFullError           503 store_full         exit 6
    ├── ModelIncompleteError         503 model_incomplete   exit 1
    ├── NoLiveModelError             503 no_model           exit 7
    │   └── NoModelError             (nothing to roll back, promote or abort)
    ├── BadRequestError              422 invalid_request    exit 2
    │   └── InputError               (the trainer's input, flags and columns)
    ├── UnknownItemError             404 unknown_item       exit 2
    ├── NotFoundError                404 not_found          exit 2
    ├── UnauthorizedError            401 unauthorized       exit 2
    ├── ForbiddenError               403 forbidden          exit 2
    └── TrainingError                500 internal_error     exit 1
        ├── LockedError              409 locked             exit 4
        └── RefusedError             409 refused            exit 5
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_REDIS_UNAVAILABLE = 3
EXIT_LOCKED = 4
EXIT_REFUSED = 5
EXIT_REDIS_FULL = 6
EXIT_NO_MODEL = 7


class RecsvcError(Exception):
    status_code = 500
    code = "internal_error"
    exit_code = EXIT_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StoreUnavailableError(RecsvcError):
    """Redis did not answer, or answered with an error."""

    status_code = 503
    code = "store_unavailable"
    exit_code = EXIT_REDIS_UNAVAILABLE


class OverloadedError(StoreUnavailableError):
    """Redis may be fine, but every pooled connection stayed busy past the timeout: too
    many concurrent requests for ``RECSVC_REDIS_MAX_CONNECTIONS``. Retry shortly."""

    code = "overloaded"


class StoreFullError(StoreUnavailableError):
    """Redis refused a write: ``maxmemory`` reached under ``noeviction``, or a version
    would not fit in what is left. Nothing was switched; the live model stays."""

    code = "store_full"
    exit_code = EXIT_REDIS_FULL


class ModelIncompleteError(RecsvcError):
    """The live version lacks a key its manifest lists (an evicting Redis, a manual
    delete): answers from it would be wrong, so none are given. Roll back or retrain."""

    status_code = 503
    code = "model_incomplete"


class NoLiveModelError(RecsvcError):
    """Redis answers but no model has been published yet."""

    status_code = 503
    code = "no_model"
    exit_code = EXIT_NO_MODEL


class NoModelError(NoLiveModelError):
    """Nothing for a trainer's command to act on: no live model, no previous version to
    roll back to, no A/B test to promote or abort."""


class BadRequestError(RecsvcError):
    status_code = 422
    code = "invalid_request"
    exit_code = EXIT_BAD_INPUT


class InputError(BadRequestError):
    """The purchases, a column mapping or a flag cannot be used; nothing was published."""


class UnknownItemError(RecsvcError):
    status_code = 404
    code = "unknown_item"
    exit_code = EXIT_BAD_INPUT


class NotFoundError(RecsvcError):
    status_code = 404
    code = "not_found"
    exit_code = EXIT_BAD_INPUT


class UnauthorizedError(RecsvcError):
    status_code = 401
    code = "unauthorized"
    exit_code = EXIT_BAD_INPUT


class ForbiddenError(RecsvcError):
    status_code = 403
    code = "forbidden"
    exit_code = EXIT_BAD_INPUT


class TrainingError(RecsvcError):
    """A trainer's run failed (exit 1) or was stopped for a reason of its own."""


class LockedError(TrainingError):
    """Another trainer holds the publisher lock."""

    status_code = 409
    code = "locked"
    exit_code = EXIT_LOCKED


class RefusedError(TrainingError):
    """The quality gate refused the candidate; the live model stays."""

    status_code = 409
    code = "refused"
    exit_code = EXIT_REFUSED
