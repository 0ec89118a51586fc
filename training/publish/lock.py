"""The publisher lock: one trainer per key prefix, held from before a run reads its input
until it has switched, renewed by a thread; a killed trainer frees it when it expires."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import RedisError

from training.errors import (
    LockedError,
)
from training.publish.base import PublisherBase

LOCK_TTL_MS = 30_000
"""How long the publish lock outlives a trainer that stopped renewing it (killed, say):
a trainer started after a crash waits this long at most (``--wait-lock``)."""


class LockHolder(PublisherBase):
    """The publisher lock: one trainer per key prefix."""

    @contextmanager
    def hold(self, wait_s: float = 0.0) -> Iterator[str]:
        """Holds the publisher lock for a whole run, renewed every third of its expiry by
        a thread; a killed trainer frees it when it expires. Waits up to ``wait_s`` for
        another holder to finish. Nested calls share the lock."""
        if self._token is not None:
            yield self._token
            return
        token = secrets.token_hex(16)
        deadline = time.monotonic() + wait_s
        while (
            not (
                acquired := self._call(
                    lambda: self.client.set(self.layout.lock, token, nx=True, px=self.lock_ttl_ms)
                )
            )
            and time.monotonic() < deadline
        ):
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        if not acquired:
            left = self._call(self.client.pttl, self.layout.lock)
            expiry = (
                f"; it expires in {max(0, int(left)) / 1000:.0f} s unless renewed" if left else ""
            )
            raise LockedError(
                f"another trainer holds the lock on prefix {self.layout.prefix!r}{expiry} "
                "(one trainer per prefix; a killed one frees it when it expires)"
            )
        self._token = token
        self._lost.clear()
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew_until, args=(token, stop), name="recsvc-lock", daemon=True
        )
        renewer.start()
        try:
            yield token
        finally:
            stop.set()
            renewer.join()
            self._token = None
            with contextlib.suppress(RedisError):  # else the expiry frees it
                self._release(keys=[self.layout.lock], args=[token])

    def _renew_until(self, token: str, stop: threading.Event) -> None:
        while not stop.wait(self.lock_ttl_ms / 3000):
            try:
                if not self._renew(keys=[self.layout.lock], args=[token, self.lock_ttl_ms]):
                    self._lost.set()
                    return
            except RedisError:
                continue  # Redis is away: the writes will fail too, or it comes back in time

    def _keep_lock(self, token: str) -> None:
        if self._lost.is_set() or not self._call(
            lambda: self._renew(keys=[self.layout.lock], args=[token, self.lock_ttl_ms])
        ):
            raise LockedError("publisher lock lost while writing; nothing was switched")
