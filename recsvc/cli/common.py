"""What every command shares: exit codes, the one-line failure, Redis errors in a
command's terms, who acts."""

from __future__ import annotations

import getpass
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from recsvc.config import Settings
from recsvc.errors import EXIT_BAD_INPUT as EXIT_BAD_INPUT
from recsvc.errors import EXIT_NO_MODEL as EXIT_NO_MODEL
from recsvc.errors import EXIT_REDIS_UNAVAILABLE as EXIT_REDIS_UNAVAILABLE
from recsvc.errors import NoLiveModelError
from recsvc.store import ModelStore
from recsvc.store import backend as storage
from recsvc.store.embedded import EmbeddedRedisForbiddenError, redis_url_for

SAMPLE = "online_retail_sample.csv.gz"


TRAINER_COMMANDS = ("train", "evaluate", "rollback", "promote", "abort", "status")
"""Commands ``recsvc`` hands to the trainer's CLI (``python -m training``) as they are."""


DEMO_PREFIX_SUFFIX = "-demo"
"""The demo keeps its model under its own key prefix, so it never meets (nor is gated
against) a model of the store's own data in the same Redis."""


def sample_path() -> Path:
    return Path(str(resources.files("recsvc") / "data" / SAMPLE))


def fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def store_error(exc: Exception, kept: str = "") -> int:
    """The exit code and message of a failure to reach the live model."""
    if isinstance(exc, EmbeddedRedisForbiddenError):
        return fail(EXIT_BAD_INPUT, str(exc))
    if isinstance(exc, NoLiveModelError):
        return fail(EXIT_NO_MODEL, f"{exc}: train one first (recsvc train)")
    return fail(EXIT_REDIS_UNAVAILABLE, f"{exc}{kept}")


def actor() -> str:
    return f"cli {getpass.getuser()}@{socket.gethostname()}"


@asynccontextmanager
async def model_store(settings: Settings) -> AsyncIterator[ModelStore]:
    """The live model's store, for a command (one client, closed after)."""
    with redis_url_for(
        settings.redis_url, settings.data_dir, allow_embedded=settings.allow_embedded_redis
    ) as url:
        client = storage.async_client(
            url, settings.redis_cluster, settings.redis_timeout_s, blocking=False
        )
        try:
            yield ModelStore(client, settings.layout)
        finally:
            await client.aclose()
