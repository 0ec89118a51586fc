"""``status``: where the trainer and the service stand on this key prefix, in words (or
JSON with ``--json``): the live, previous and candidate versions, the live one's age,
size and headline measures, and the A/B test."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from recsvc.config import Settings
from training.cli.commands import open_publisher
from training.errors import EXIT_NO_MODEL, EXIT_OK


def run_status(args: argparse.Namespace, settings: Settings) -> int:
    """Prints the status; exits 7 (naming the prefixes that hold models) when nothing is
    live on this prefix."""
    prefix = settings.key_prefix
    with open_publisher(settings) as publisher:
        live, previous = publisher.live_version(), publisher.previous_version()
        candidate, test = publisher.candidate_version(), publisher.experiment()
        meta = publisher.meta(live) if live else None
        others = [p for p in publisher.prefixes() if p != prefix] if live is None else []
    status: dict[str, Any] = {
        "prefix": prefix,
        "live": live,
        "previous": previous,
        "candidate": candidate,
        "experiment": None if test is None else orjson.loads(test.encode()),
        "live_meta": meta,
    }
    if args.json:
        print(orjson.dumps(status, option=orjson.OPT_INDENT_2).decode())
    else:
        print(summary(status))
    if live is None:
        held = ", ".join(others) if others else "none"
        print(
            f"error: nothing is published under the key prefix {prefix!r} "
            f"(prefixes with a live model on this Redis: {held}); choose one with "
            "--prefix or RECSVC_KEY_PREFIX, or train one",
            file=sys.stderr,
        )
        return EXIT_NO_MODEL
    return EXIT_OK


def summary(status: dict[str, Any], now: datetime | None = None) -> str:
    """The status in a few lines a person reads."""
    lines = [f"prefix     {status['prefix']}"]
    meta = status["live_meta"] or {}
    if status["live"] is None:
        lines.append("live       none")
    else:
        lines.append(f"live       {status['live']}{_age(meta.get('trained_at'), now)}")
        counts = meta.get("counts", {})
        if counts:
            lines.append(
                "           "
                + ", ".join(
                    f"{counts[k]:,} {k.replace('_', ' ')}"
                    for k in ("orders", "customers", "items")
                    if k in counts
                )
            )
        lines += [f"           {line}" for line in _measures(meta.get("evaluation", {}))]
    lines.append(f"previous   {status['previous'] or 'none (nothing to roll back to)'}")
    test = status["experiment"]
    if test is None:
        lines.append("A/B test   none")
    else:
        started = datetime.fromtimestamp(float(test["started_at"]), UTC)
        lines.append(
            f"A/B test   candidate {test['candidate']} serves {float(test['share']):.0%} of "
            f"customers and visitors since {started:%Y-%m-%d %H:%M} UTC "
            f"(control {test['control']}); end it with promote or abort"
        )
    return "\n".join(lines)


def _age(trained_at: str | None, now: datetime | None) -> str:
    if not trained_at:
        return ""
    at = datetime.fromisoformat(trained_at)
    hours = ((now or datetime.now(UTC)) - at).total_seconds() / 3600
    ago = f"{hours:.0f} hours ago" if hours < 48 else f"{hours / 24:.0f} days ago"
    if hours < 1:
        ago = "less than an hour ago"
    return f", trained {at:%Y-%m-%d %H:%M} UTC ({ago})"


def _measures(evaluation: dict[str, Any]) -> list[str]:
    """The headline measures in words, beside best-sellers'."""
    served, popular = evaluation.get("served", {}), evaluation.get("popularity", {})
    out = []
    for key, what in (
        ("cart_hr@10", "of held-out carts had the item added next among the 10 suggestions"),
        ("next_recall@10", "of customers' next purchases were among their 10 suggestions"),
    ):
        if key in served:
            also = f" (best-sellers: {popular[key]:.1%})" if key in popular else ""
            out.append(f"{served[key]:.1%} {what}{also}")
    return out
