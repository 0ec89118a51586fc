"""Garbage collection: after a switch a ``SCAN`` finds and deletes every version but the
live, previous and candidate ones, including what a killed trainer wrote after it lost
the lock."""

from __future__ import annotations

from training.publish.base import PublisherBase


class GarbageCollector(PublisherBase):
    """Deletes every version but the live, previous and candidate ones."""

    def collect_garbage(self) -> list[str]:
        """Deletes every key of every version but the live, the previous and an A/B test's
        candidate, whether
        its version finished, was registered, or was written by a trainer that lost the
        lock. Found by ``SCAN``, so nothing a trainer writes can be missed."""
        keep = {self.live_version(), self.previous_version(), self.candidate_version(), None}
        keys = self._call(lambda: list(self.storage.scan(self.layout.model_pattern)))
        doomed_keys: list[bytes] = []
        doomed: set[str] = set()
        for key in keys:
            version = self.layout.version_of(bytes(key).decode(errors="replace"))
            if version not in keep:
                doomed.add(str(version))
                doomed_keys.append(key)
        # Metadata first: a reader that meets a version without it re-reads the pointer,
        # where one with metadata but missing keys would report the version incomplete.
        metas = {self.layout.meta(v).encode() for v in doomed}
        doomed_keys.sort(key=lambda k: k not in metas)
        self._call(self.storage.unlink, doomed_keys)
        self._call(self.client.delete, self.layout.versions)  # the registry older builds kept
        return sorted(doomed)
