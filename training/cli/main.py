"""``python -m training``: train and publish, roll back, show status, run A/B tests.

Exit codes (for cron): 0 success, 1 unexpected failure, 2 bad input (or configuration),
3 Redis unreachable, 4 another trainer holds the lock, 5 refused by the quality gate,
6 Redis out of memory, 7 nothing to act on (no previous version to roll back to, no A/B
test to promote or abort, no live version to test a candidate against, nothing live on
the prefix for status).

A ``train`` run holds the publisher lock from its start to its switch: one trainer per
key prefix, and the model live before it always stays as the rollback target.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from recsvc.config import (
    PREFIX_HELP,
    Settings,
    SettingsError,
    load_settings,
    redact_url,
    with_prefix,
)
from recsvc.helptext import HelpFormatter, plain
from training import memory
from training.cli.commands import open_publisher, run_evaluate, run_train
from training.cli.options import data_options, share
from training.cli.status import run_status
from training.engines.local import Stages
from training.errors import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    RecsvcError,
)
from training.evaluation.gate import GateRules


def parser(prog: str = "python -m training") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description=plain(__doc__), formatter_class=HelpFormatter
    )
    p.add_argument("--prefix", help=PREFIX_HELP)
    sub = p.add_subparsers(dest="command", required=True)
    where = argparse.ArgumentParser(add_help=False)
    # Also after the command; SUPPRESS keeps a --prefix given before it.
    where.add_argument("--prefix", default=argparse.SUPPRESS, help=PREFIX_HELP)
    data = data_options()
    lock = argparse.ArgumentParser(add_help=False, parents=[where])
    lock.add_argument(
        "--wait-lock",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to this long for another trainer's lock before exiting 4 (default 0)",
    )
    t = sub.add_parser(
        "train",
        parents=[data, lock],
        formatter_class=HelpFormatter,
        help="evaluate, gate, and publish a new version (tuning: --tune-budget)",
    )
    g = t.add_argument_group("quality gate")
    g.add_argument(
        "--force", action="store_true", help="publish even if the gate refuses the candidate"
    )
    g.add_argument(
        "--gate-tolerance",
        type=float,
        default=GateRules.tolerance,
        help="relative drop allowed against the live recipe refit on this window, even "
        "beyond the noise",
    )
    g.add_argument(
        "--gate-min-cases",
        type=int,
        default=GateRules.min_cases,
        help="held-out cases a task needs before the candidate is judged against the live "
        "recipe on it",
    )
    g.add_argument(
        "--min-data-ratio",
        type=float,
        default=GateRules.min_data_ratio,
        help="refuse data smaller than this share of the live model's",
    )
    t.add_argument("--dry-run", action="store_true", help="train and report, publish nothing")
    t.add_argument(
        "--include-events",
        action="store_true",
        help="add the live order events the service has heard (POST /v1/events/orders) "
        "to the purchases; orders the file already holds are not counted twice",
    )
    t.add_argument(
        "--ab-share",
        type=share,
        metavar="SHARE",
        help="publish as the candidate of an A/B test, served to this share (0 to 1) of the "
        "customers and visitors beside the live version, which stays live; end the test "
        "with promote or abort",
    )
    ev = sub.add_parser(
        "evaluate",
        parents=[data, where],
        formatter_class=HelpFormatter,
        help="tune and score against baselines on a temporal holdout; write the report",
    )
    ev.add_argument(
        "--out", type=Path, default=Path("recsvc-report"), help="directory for the report"
    )
    for name, text in (
        ("rollback", "make the previous version live again"),
        ("promote", "end the A/B test: its candidate becomes live (rollback undoes it)"),
        ("abort", "end the A/B test: the live version stays, the candidate is no longer served"),
    ):
        sub.add_parser(name, parents=[lock], help=text, formatter_class=HelpFormatter)
    st = sub.add_parser(
        "status",
        parents=[where],
        help="show the live, previous and candidate versions and the A/B test (exit 7 "
        "when nothing is live on the prefix)",
        formatter_class=HelpFormatter,
    )
    st.add_argument("--json", action="store_true", help="print it as JSON")
    return p


def main(
    argv: Sequence[str] | None = None,
    settings: Settings | None = None,
    prog: str = "python -m training",
) -> int:
    args = parser(prog).parse_args(argv)
    try:
        settings = with_prefix(settings or load_settings(), args.prefix)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        budget_text = getattr(args, "memory_budget", None) or settings.train_memory_budget
        stages = Stages(budget=memory.Budget.parse(budget_text))
    except RecsvcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    try:
        if args.command == "train":
            run_train(args, settings, stages)
        elif args.command == "evaluate":
            run_evaluate(args, stages)
        elif args.command == "rollback":
            with open_publisher(settings) as publisher, publisher.hold(args.wait_lock):
                version = publisher.rollback()
            print(f"rolled back: version {version} is live")
        elif args.command == "promote":
            with open_publisher(settings) as publisher, publisher.hold(args.wait_lock):
                version = publisher.promote()
            print(f"promoted: version {version} is live; the A/B test ended")
        elif args.command == "abort":
            with open_publisher(settings) as publisher, publisher.hold(args.wait_lock):
                version = publisher.abort()
            print(f"aborted: candidate {version} is no longer served; the A/B test ended")
        elif args.command == "status":
            return run_status(args, settings)
    except RecsvcError as exc:
        print(f"error: {redact_url(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except MemoryError:
        # The estimates missed: still a clean refusal, never a kill by the kernel.
        print(
            f"error: out of memory within the budget of {memory.human(stages.budget.limit)}: "
            "raise --memory-budget and the pod's memory limit",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    return EXIT_OK
