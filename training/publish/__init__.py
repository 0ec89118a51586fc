"""Publishing a version to Redis: written whole, then switched live in one step.

``Publisher`` (``publisher``) is its parts: ``lock``, ``writer``, ``pointers``, ``gc``."""

from training.publish.lock import LOCK_TTL_MS
from training.publish.publisher import Publisher
from training.publish.writer import ExternalHistories, ModelPayload, estimate_bytes

__all__ = ["LOCK_TTL_MS", "ExternalHistories", "ModelPayload", "Publisher", "estimate_bytes"]
