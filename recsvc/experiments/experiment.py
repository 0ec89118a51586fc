"""A/B tests between model versions: what one is, and which arm a visitor is in.

A test serves a *candidate* version beside the live one to a share of traffic. The split
is sticky: a customer (or a visitor, by the ``X-Visitor-ID`` header) is hashed with the
test's id into [0, 1), and lands in the candidate arm when the hash is below the share,
so the same id gets the same arm on every request, worker and replica, and a test with a
new id reshuffles everyone. Requests that carry no id are outside the test: they are
served by the live version, in the arm ``live``, and never counted as its control.

The trainer writes an ``Experiment`` (``python -m training train --ab-share``) and ends
it (``promote``, ``abort``); the service reads it. Both go through this module, so the
two cannot disagree on the split. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

import orjson

Arm = Literal["live", "control", "candidate"]
"""``live``: no test applies (none runs, or the request names nobody); ``control`` and
``candidate``: the two arms of the running test, served by the live version and by the
candidate."""
ARMS: tuple[Arm, ...] = ("live", "control", "candidate")
_SCALE = float(1 << 64)


@dataclass(frozen=True)
class Served:
    """Which arm answered, and the A/B test it belongs to (its candidate version; None
    outside a test)."""

    arm: Arm = "live"
    test: str | None = None


LIVE = Served()


@dataclass(frozen=True)
class Experiment:
    id: str
    candidate: str
    """The version the candidate arm is served from."""
    share: float
    """Of the traffic that names a customer or visitor, the part in the candidate arm."""
    control: str
    """The version live when the test started (the control arm is whatever is live)."""
    started_at: float
    """Unix seconds."""

    def __post_init__(self) -> None:
        if not 0.0 < self.share < 1.0:
            raise ValueError(f"an A/B share must be between 0 and 1, got {self.share}")

    @classmethod
    def start(cls, candidate: str, control: str, share: float) -> Experiment:
        return cls(f"ab-{candidate}", candidate, share, control, time.time())

    def arm(self, unit: str | None) -> Arm:
        """The arm of a customer or visitor id (None: outside the test)."""
        if not unit:
            return "live"
        digest = hashlib.blake2b(f"{self.id}\x00{unit}".encode(), digest_size=8).digest()
        return "candidate" if int.from_bytes(digest, "big") / _SCALE < self.share else "control"

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def decode(cls, blob: bytes) -> Experiment:
        raw: dict[str, Any] = orjson.loads(blob)
        return cls(
            str(raw["id"]),
            str(raw["candidate"]),
            float(raw["share"]),
            str(raw["control"]),
            float(raw["started_at"]),
        )
