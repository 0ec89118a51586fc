"""What a complete version holds: its format and the keys it was written with, with
their sizes (``meta["manifest"]``), checked before a version is served or switched to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FORMAT_VERSION = 3
"""Bumped whenever an encoding below changes; readers refuse a format they do not know.
2: neighbour lists carry an evidence count; catalog, alternatives and stock keys.
3: a stored history may carry the customer's precomputed suggestions (``Picks``)."""

READABLE_FORMATS = (2, 3)
"""What this build serves: a version written before the upgrade stays servable (and a
rollback to it works); its customers are ranked online."""


MANIFEST_PARTS = (
    "items",
    "popular",
    "catalog",
    "neighbours",
    "alternatives",
    "customers",
    "report",
    "report.html",
)
"""The keys a version is written with, in the order they are written; ``meta`` (last)
lists each with its size. Stock keys change after publishing and are not in it."""


REQUIRED_PARTS = ("items", "popular", "neighbours")
"""What a version written before manifests must have to be served."""


@dataclass(frozen=True)
class ManifestEntry:
    part: str
    kind: str
    """``string`` (size: bytes, ``STRLEN``) or ``hash`` (size: fields, ``HLEN``)."""
    size: int | None
    """None: any non-empty size (a version written before manifests)."""
    bucket: int | None = None
    """The bucket of a bucketed part on a cluster (None: the part's one key)."""

    @property
    def spec(self) -> str:
        return f"{self.kind}:{'*' if self.size is None else self.size}"

    def as_json(self) -> list[Any]:
        head = [self.part, self.kind, self.size]
        return head if self.bucket is None else [*head, self.bucket]


def manifest_of(meta: dict[str, Any]) -> list[ManifestEntry]:
    """The keys a complete version has, from its metadata."""
    raw = meta.get("manifest")
    if raw is None:
        kinds = {"neighbours": "hash"}
        return [ManifestEntry(p, kinds.get(p, "string"), None) for p in REQUIRED_PARTS]
    entries = []
    for entry in raw:
        part, kind, size, *rest = entry
        if part not in MANIFEST_PARTS or kind not in ("string", "hash") or len(rest) > 1:
            raise ValueError(f"bad manifest entry {entry!r}")
        bucket = int(rest[0]) if rest else None
        entries.append(ManifestEntry(str(part), str(kind), int(size), bucket))
    return entries


class UnknownFormatError(ValueError):
    """The model was written by a newer trainer than this reader understands."""


def check_format(meta: dict[str, Any]) -> None:
    found = meta.get("format")
    if found not in READABLE_FORMATS:
        readable = ", ".join(str(f) for f in READABLE_FORMATS)
        raise UnknownFormatError(f"model format {found!r}, this build reads {readable}")
