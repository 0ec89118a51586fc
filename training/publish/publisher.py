"""Stage 6: publish a model version to Redis, whole, then switch it live atomically.

``Publisher`` is its parts, one module per job: ``lock`` (the publisher lock), ``writer``
(a version written whole), ``pointers`` (switch, rollback, A/B tests) and ``gc`` (old
versions deleted); ``base`` holds what they share.

One trainer per key prefix: a run holds the publisher lock from before it reads its
input until it has switched (``Publisher.hold``), renewed by a thread, so a second
trainer stops at once with a clear exit and the model live before stays for rollback.

Order of writes: items, popularity, catalog, neighbour lists, histories, report, then
the metadata, which carries the version's manifest (every key with its size). The switch
is one script that checks the lock is still ours and every manifest key is there with
its size, then moves the pointer. Until the switch readers keep the live version; after
it they get the new one whole. Every key of every version lives under one pattern, so
after a switch a ``SCAN`` finds and deletes all but the live and previous versions,
including what a killed or stalled trainer wrote after it lost the lock.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TextIO

from recsvc import model as lay
from recsvc.store import backend as storage
from training.errors import (
    NoModelError,
)
from training.publish.lock import LOCK_TTL_MS
from training.publish.pointers import Pointers
from training.publish.writer import (
    ModelPayload,
    VersionWriter,
)


class Publisher(VersionWriter, Pointers):
    def __init__(
        self,
        client: storage.SyncClient,
        layout: lay.Layout,
        lock_ttl_ms: int = LOCK_TTL_MS,
        on_progress: Callable[[int, int, str], None] | None = None,
        warn: TextIO | None = None,
    ) -> None:
        self.client = client
        self.layout = layout
        self.storage = storage.sync_storage(client, layout)
        self.lock_ttl_ms = lock_ttl_ms
        self.on_progress = on_progress
        self.warn = warn or sys.stderr
        self._switch = client.register_script(lay.SWITCH_SCRIPT)
        self._rollback = client.register_script(lay.ROLLBACK_SCRIPT)
        self._candidate = client.register_script(lay.CANDIDATE_SCRIPT)
        self._promote = client.register_script(lay.PROMOTE_SCRIPT)
        self._abort = client.register_script(lay.ABORT_SCRIPT)
        self._renew = client.register_script(lay.RENEW_LOCK_SCRIPT)
        self._release = client.register_script(lay.RELEASE_LOCK_SCRIPT)
        self._token: str | None = None
        self._lost = threading.Event()

    # -- reads -----------------------------------------------------------------------

    # -- lock --------------------------------------------------------------------------

    # -- writes ------------------------------------------------------------------------

    def publish(
        self, payload: ModelPayload, version: str | None = None, ab_share: float | None = None
    ) -> str:
        """Writes the version whole, then makes it live; or, with ``ab_share``, the
        candidate of an A/B test served beside the live version to that share of traffic
        (the live version stays live; ``promote`` or ``abort`` ends the test)."""
        version = version or lay.new_version()
        with self.hold() as token:
            if ab_share is not None and self.live_version() is None:
                raise NoModelError(
                    "no live version to test a candidate against: publish one without "
                    "--ab-share first; nothing was written"
                )
            self.check_room(payload)
            self.write(payload, version, token)
            if ab_share is None:
                self.switch(version, token)
            else:
                self.start_test(version, ab_share, token)
            self.collect_garbage()
        return version
