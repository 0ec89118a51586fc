"""The pointers: the switch and the rollback (each one script that checks the lock is
still ours and the version whole), and an A/B test's start, promotion and abort."""

from __future__ import annotations

import time
from typing import Any

import orjson
from redis.exceptions import RedisError

from recsvc import model as lay
from recsvc.experiments.experiment import Experiment
from recsvc.store import backend as storage
from training.errors import (
    LockedError,
    NoModelError,
    TrainingError,
)
from training.publish.base import refusal
from training.publish.gc import GarbageCollector
from training.publish.lock import LockHolder


class Pointers(LockHolder, GarbageCollector):
    """Moves the pointers: switch, rollback, and an A/B test's start, promotion and abort."""

    def start_test(self, version: str, share: float, token: str) -> Experiment:
        """Serves the written ``version`` as the candidate of a new A/B test (replacing a
        test already running, whose candidate is then collected)."""
        keys = self.layout
        live = self.live_version()
        if live is None:
            raise NoModelError("no live version to test a candidate against")
        test = Experiment.start(version, live, share)
        self._move(
            self._candidate,
            version,
            [keys.lock, keys.live, keys.candidate, keys.experiment],
            [token, version, test.encode()],
            "A/B start refused",
            LockedError(f"A/B start refused: version {version} has no metadata"),
        )
        return test

    def promote(self) -> str:
        """Ends the A/B test by making its candidate live; the live version becomes the
        previous one (``rollback`` undoes the promotion). Returns the new live version."""
        keys = self.layout
        with self.hold() as token:
            test = self.experiment()
            candidate = self.candidate_version()
            if test is None or candidate is None:
                raise NoModelError("no A/B test is running: nothing to promote")
            self._move(
                self._promote,
                candidate,
                [keys.lock, keys.live, keys.previous, keys.candidate, keys.experiment,
                 keys.experiments],
                [token, candidate, self._ended(test, "promoted"), lay.EXPERIMENTS_KEPT],
                "promotion refused, the live version stays",
                TrainingError(
                    f"promotion refused: candidate {candidate} has no metadata (deleted or "
                    "evicted); abort the test"
                ),
            )  # fmt: skip
            self.collect_garbage()
            return candidate

    def abort(self) -> str:
        """Ends the A/B test; the live version stays, the candidate is collected. Returns
        the candidate's version."""
        keys = self.layout
        with self.hold() as token:
            test = self.experiment()
            if test is None:
                raise NoModelError("no A/B test is running: nothing to abort")
            try:
                candidate = self._abort(
                    keys=[keys.lock, keys.candidate, keys.experiment, keys.experiments],
                    args=[token, self._ended(test, "aborted"), lay.EXPERIMENTS_KEPT],
                )
            except RedisError as exc:
                raise refusal(exc, "abort refused") from exc
            self.collect_garbage()
            return bytes(candidate).decode()

    def _ended(self, test: Experiment, outcome: str) -> bytes:
        ended = {**orjson.loads(test.encode()), "outcome": outcome, "ended_at": time.time()}
        return orjson.dumps(ended)

    def switch(self, version: str, token: str) -> str | None:
        keys = self.layout
        old = self._move(
            self._switch,
            version,
            [keys.lock, keys.live, keys.previous],
            [token, version],
            "switch refused",
            LockedError(f"switch refused: version {version} has no metadata"),
        )
        return None if old is None else bytes(old).decode()

    def rollback(self) -> str:
        """Makes the previous version live again (and the current one previous), only if
        every key of the previous version's manifest is still there."""
        keys = self.layout
        with self.hold() as token:
            previous = self.previous_version()
            if previous is None:
                raise NoModelError("no previous version to roll back to; the live version stays")
            self._move(
                self._rollback,
                previous,
                [keys.lock, keys.live, keys.previous],
                [token, previous],
                "rollback refused, the live version stays",
                TrainingError(
                    f"rollback refused: previous version {previous} has no metadata (deleted "
                    "or evicted); the live version stays"
                ),
            )
            return previous

    def _move(
        self,
        script: Any,
        version: str,
        keys: list[str],
        args: list[Any],
        refused: str,
        no_meta: TrainingError,
    ) -> Any:
        """Runs a script that moves a pointer to ``version`` (switch, rollback, A/B start,
        promotion): its ``keys`` then the version's metadata and manifest keys, its
        ``args`` then the manifest's specs, the script's refusal in the trainer's terms."""
        meta = self.meta(version)
        if meta is None:
            raise no_meta
        # On a cluster the buckets live in other slots than the pointer, where the script
        # cannot look: they are checked just before it, under the same lock (a version's
        # keys never change once written; only an evicting Redis or a hand could take one).
        outside = self.layout.outside_script(meta)
        if outside:
            found = self._call(
                self.storage.inspect, [self.layout.entry_key(version, e) for e in outside]
            )
            problems = storage.manifest_problems(outside, found)
            if problems:
                raise TrainingError(f"{refused}: INCOMPLETE {'; '.join(problems)}")
        manifest_keys, specs = self.layout.verify_args(version, meta)
        try:
            return script(
                keys=[*keys, self.layout.meta(version), *manifest_keys], args=[*args, *specs]
            )
        except RedisError as exc:
            raise refusal(exc, refused) from exc
