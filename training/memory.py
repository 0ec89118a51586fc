"""The trainer's memory budget: estimate a stage before running it, refuse what cannot fit.

A trainer killed by the kernel leaves an operator a bare "OOMKilled" and no reason, so
running out of memory is treated as bad input: before each heavy stage the trainer
estimates what the stage needs on top of what the process already holds, picks methods
and block sizes that fit (``training.neighbours`` sizes its row blocks and chooses
EASE's solver from the stage's share), and when even the leanest choice cannot fit it
stops with exit code 2 and says which budget to raise.

The default budget fits the nightly CronJob's memory limit (``k8s/cronjob.yaml``), with
room for the interpreter's own overhead; ``tests/system/test_deploy.py`` keeps the two in step.
Peak memory is measured per stage (resident memory sampled while the stage runs) and
reported in the summary line and the version's metadata.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from recsvc.config import Settings
from training.errors import InputError

GIB = 1 << 30
MIB = 1 << 20
DEFAULT_BUDGET = str(Settings.model_fields["train_memory_budget"].default)
"""What the trainer may use: 7/8 of the CronJob's 4 GiB limit (``k8s/cronjob.yaml``)."""

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "ki": 1 << 10,
    "kib": 1 << 10,
    "m": 1000**2,
    "mb": 1000**2,
    "mi": MIB,
    "mib": MIB,
    "g": 1000**3,
    "gb": 1000**3,
    "gi": GIB,
    "gib": GIB,
    "t": 1000**4,
    "tb": 1000**4,
    "ti": 1 << 40,
    "tib": 1 << 40,
}


def parse_size(text: str) -> int:
    """'3.5GiB', '4Gi' (Kubernetes), '3500M', '2g' or a number of bytes."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise InputError(f"not a memory size: {text!r} (examples: 3.5GiB, 4Gi, 3500MB)")
    return int(float(match.group(1)) * _UNITS[unit])


def human(n_bytes: float) -> str:
    if abs(n_bytes) >= GIB:
        return f"{n_bytes / GIB:.2f} GiB"
    return f"{n_bytes / MIB:.0f} MiB"


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss() -> int:
    """Resident memory of this process now, in bytes (0 where /proc is missing)."""
    kib = _status_kib("VmRSS")
    return 0 if kib is None else kib * 1024


class Window:
    """The largest RSS seen while the window is open, sampled every few milliseconds.

    The kernel's own peak (VmHWM) cannot be reset per stage without also resetting the
    peak that ``/usr/bin/time -v`` and the pod's metrics report, so stages sample.
    """

    _open: ClassVar[set[Window]] = set()
    _lock: ClassVar[threading.Lock] = threading.Lock()
    _thread: ClassVar[threading.Thread | None] = None
    INTERVAL_S: ClassVar[float] = 0.02

    def __init__(self) -> None:
        self.max_bytes = rss()

    def __enter__(self) -> Window:
        with Window._lock:
            Window._open.add(self)
            if Window._thread is None:
                Window._thread = threading.Thread(
                    target=Window._sample, name="rss-sampler", daemon=True
                )
                Window._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.update(rss())
        with Window._lock:
            Window._open.discard(self)

    def update(self, value: int) -> None:
        self.max_bytes = max(self.max_bytes, value)

    @staticmethod
    def _sample() -> None:
        while True:
            time.sleep(Window.INTERVAL_S)
            with Window._lock:
                windows = list(Window._open)
            if windows:
                now = rss()
                for w in windows:
                    w.update(now)


class MemoryBudgetError(InputError):
    """A stage would need more memory than the budget: bad input, exit code 2."""


@dataclass(frozen=True)
class Budget:
    limit: int
    """Bytes the whole process may hold."""

    @classmethod
    def parse(cls, text: str) -> Budget:
        limit = parse_size(text)
        if limit < 256 * MIB:
            raise InputError(f"--memory-budget {text!r} is too small: at least 256MiB")
        return cls(limit)

    def available(self) -> int:
        """What a stage may still allocate: the budget less what the process holds."""
        return max(0, self.limit - rss())

    def require(self, stage: str, need: int, what: str) -> None:
        """Refuses cleanly, before allocating, a stage that cannot fit."""
        held = rss()
        if held + need > self.limit:
            raise MemoryBudgetError(
                f"the {stage} stage needs about {human(need)} more ({what}) with "
                f"{human(held)} already in use, over the memory budget of "
                f"{human(self.limit)}: raise --memory-budget (RECSVC_TRAIN_MEMORY_BUDGET) "
                f"and the pod's memory limit to at least {human(1.15 * (held + need))}"
            )


# -- estimates, in bytes, of what each stage adds ----------------------------------------
# Each is a count of the arrays the stage allocates at its peak, times their element size,
# measured against VmHWM on Online Retail, Complete Journey and the synthetic sets
# (benchmarks/scale.py); they err on the high side.


def read_bytes(rows: int, columns: int) -> int:
    """Dictionary-encoded columns: codes and numbers, about 8 bytes a cell, read and
    cleaned (the copy that cleaning makes, and pyarrow's buffers before pandas')."""
    return int(rows * columns * 8 * 3)


def matrices_bytes(lines: int) -> int:
    """COO triples of every line, the CSR order x item and customer x item matrices, and
    per-order, per-customer and per-item arrays (each at most one entry a line)."""
    return int(lines * 12 * 3 + lines * 3 * 8 * 2)


def als_bytes(customers: int, items: int, factors: int, nnz: int) -> int:
    """User and item factors (and implicit's working copies), plus the confidence matrix
    in both orientations."""
    return int((customers + items) * factors * 4 * 3 + nnz * 12 * 3)


def lists_bytes(items: int, per_item: int) -> int:
    """Padded per-item lists: index, score and count, with a working copy."""
    return int(items * per_item * 16 * 2)


def minimum_neighbours_bytes(items: int, per_item: int, candidates: int) -> int:
    """The leanest neighbour stage: the lists, local EASE's candidate table, one group's
    work (a 3,000-item universe, its systems of 2 x candidates unknowns) and a small
    Gram block; the core block and larger Gram blocks only take what is left."""
    width = 2 * candidates
    return int(
        lists_bytes(items, per_item)
        + items * width * 8 * 3
        + 3_000 * 3_000 * 4 * 3
        + 256 * width * width * 4 * 4
        + 100_000 * 64
    )


def histories_bytes(customers: int, per_customer: int) -> int:
    """Each stored customer's latest items: a few numbers and one short string each."""
    return int(customers * per_customer * 24 + customers * 200)
