"""The service's own errors. Redis and decoding errors are translated into these at the
store boundary (``raise ... from exc``), and one handler per class maps them to HTTP."""

from __future__ import annotations


class RecsvcError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StoreUnavailableError(RecsvcError):
    """Redis did not answer, or answered with an error."""

    status_code = 503
    code = "store_unavailable"


class OverloadedError(StoreUnavailableError):
    """Redis may be fine, but every pooled connection stayed busy past the timeout: too
    many concurrent requests for ``RECSVC_REDIS_MAX_CONNECTIONS``. Retry shortly."""

    code = "overloaded"


class StoreFullError(StoreUnavailableError):
    """Redis refused a write: ``maxmemory`` reached under ``noeviction``."""

    code = "store_full"


class ModelIncompleteError(RecsvcError):
    """The live version lacks a key its manifest lists (an evicting Redis, a manual
    delete): answers from it would be wrong, so none are given. Roll back or retrain."""

    status_code = 503
    code = "model_incomplete"


class NoLiveModelError(RecsvcError):
    """Redis answers but no model has been published yet."""

    status_code = 503
    code = "no_model"


class UnknownItemError(RecsvcError):
    status_code = 404
    code = "unknown_item"


class BadRequestError(RecsvcError):
    status_code = 422
    code = "invalid_request"


class NotFoundError(RecsvcError):
    status_code = 404
    code = "not_found"


class UnauthorizedError(RecsvcError):
    status_code = 401
    code = "unauthorized"


class ForbiddenError(RecsvcError):
    status_code = 403
    code = "forbidden"
