"""``python -m training``: what it prints, what it publishes, and its exit codes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from recsvc.cli.common import sample_path
from recsvc.config import Settings, redact_url
from recsvc.model import Layout
from tests.conftest import free_port, tiny_train_args, write_tiny
from training.cli.main import main
from training.errors import EXIT_BAD_INPUT, EXIT_LOCKED, EXIT_NO_MODEL, EXIT_REDIS_UNAVAILABLE
from training.publish import ModelPayload, Publisher

SAMPLE = ["--purchases", str(sample_path()), "--preset", "online-retail"]


@pytest.mark.slow
def test_trains_the_bundled_sample_and_publishes(
    settings: Settings, publisher: Publisher, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", *SAMPLE], settings) == 0
    out, err = capsys.readouterr()
    live = publisher.live_version()
    assert live is not None and f"version={live}" in out
    assert "rows_read=59985" in out
    for reason in ("missing customer", "cancelled order", "non product", "exact duplicate"):
        assert reason in err
    for stage in ("read", "clean", "matrices", "als", "neighbours", "publish"):
        assert f"[{stage}] done" in err
    meta = publisher.meta(live)
    assert meta is not None and meta["counts"]["items"] > 2000
    assert meta["source"]["dropped"]["missing_customer"] == 2000
    # Seconds and peak memory per stage, in the summary line and the metadata.
    assert re.search(r" neighbours=[\d.]+s/\d+MiB ", out)
    peaks = meta["stage_peak_mib"]
    assert set(peaks) == set(meta["stage_seconds"]) >= {"read", "als", "neighbours"}
    assert all(0 < mib <= meta["memory_budget_mib"] for mib in peaks.values())
    # 3.6k items fit exact EASE in the default budget.
    assert meta["neighbour_solver"] == "dense"


def test_dry_run_publishes_nothing(
    settings: Settings, publisher: Publisher, tmp_path: Path
) -> None:
    csv = tmp_path / "p.csv"
    write_tiny(csv)
    assert main(tiny_train_args(csv, "--dry-run"), settings) == 0
    assert publisher.live_version() is None


# The columns of the tiny CSV the bad-input cases write.
COLS = ["--purchases", "{csv}", "--customer-col", "c", "--item-col", "i"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--purchases", "/nonexistent.csv", "--preset", "online-retail"], "not found"),
        (["--purchases", "{csv}", "--customer-col", "c", "--item-col", "nope"], "missing column"),
        (["--purchases", "{csv}", "--item-col", "i"], "customer and item columns"),
        ([*COLS, "--non-product-pattern", "."], "no rows left"),
        ([*COLS, "--factors", "0"], "--factors"),
        ([*COLS, "--non-product-pattern", "("], "bad non-product pattern"),
    ],
)
def test_bad_input_exits_2_and_publishes_nothing(
    settings: Settings,
    publisher: Publisher,
    block_model: ModelPayload,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    csv = tmp_path / "p.csv"
    write_tiny(csv)
    live = publisher.publish(block_model)
    code = main(["train", *[a.replace("{csv}", str(csv)) for a in args]], settings)
    assert code == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err
    assert publisher.live_version() == live


def test_redis_unreachable_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dead = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", data_dir=tmp_path)
    assert main(["train", *SAMPLE], dead) == EXIT_REDIS_UNAVAILABLE
    assert "did not answer" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["status"], ["rollback"], ["train", *SAMPLE]])
def test_errors_never_print_the_redis_password(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"redis://admin:pa55-w0rd@127.0.0.1:{free_port()}/0?password=pa55-w0rd"
    dead = Settings(redis_url=url, data_dir=tmp_path)
    assert main(command, dead) == EXIT_REDIS_UNAVAILABLE
    err = capsys.readouterr().err
    assert "did not answer" in err and "admin:***@127.0.0.1" in err
    assert "pa55-w0rd" not in err


def test_redact_url_masks_every_form_of_credential() -> None:
    assert redact_url("redis://:secret@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("x rediss://u:p%40ss@h/0 y") == "x rediss://u:***@h/0 y"
    assert redact_url("unix:///run/redis.sock?password=abc&db=1") == (
        "unix:///run/redis.sock?password=***&db=1"
    )
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"


def test_a_held_lock_exits_4_before_reading_anything(
    settings: Settings,
    client: redis.Redis,
    layout: Layout,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The lock covers the whole run: a second trainer stops before it reads its input
    (a missing file would otherwise exit 2), and says when the lock expires."""
    client.set(layout.lock, "other", px=10_000)
    code = main(tiny_train_args(tmp_path / "does-not-exist.csv"), settings)
    assert code == EXIT_LOCKED
    assert re.search(r"another trainer holds the lock .* expires in \d+ s", capsys.readouterr().err)
    assert client.get(layout.lock) == b"other"  # someone else's lock is left alone


def test_rollback_and_status(
    settings: Settings, publisher: Publisher, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "p.csv"
    write_tiny(csv)
    train = tiny_train_args(csv)
    assert main(["rollback"], settings) == EXIT_NO_MODEL  # nothing to roll back
    assert main(train, settings) == 0
    first = publisher.live_version()
    assert main(train, settings) == 0
    assert main(["rollback"], settings) == 0
    assert publisher.live_version() == first
    capsys.readouterr()
    assert main(["status", "--json"], settings) == 0
    assert f'"live": "{first}"' in capsys.readouterr().out


def test_the_module_runs_as_a_program(redis_url: str, layout: Layout, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "training", "train", "--purchases", str(tmp_path / "none.csv"),
         "--customer-col", "c", "--item-col", "i"],
        capture_output=True, text=True, timeout=120,
        env={"REDIS_URL": redis_url, "RECSVC_KEY_PREFIX": layout.prefix, "PATH": ""},
    )  # fmt: skip
    assert proc.returncode == EXIT_BAD_INPUT
    assert "error: purchases file not found" in proc.stderr


def test_wait_lock_waits_for_the_other_trainer_then_runs(
    settings: Settings, client: redis.Redis, layout: Layout, tmp_path: Path
) -> None:
    csv = tmp_path / "p.csv"
    write_tiny(csv)
    client.set(layout.lock, "other", px=700)  # a trainer finishing (or a dead one's expiry)
    assert main(tiny_train_args(csv, "--wait-lock", "5"), settings) == 0
    assert client.get(layout.live) is not None
    client.set(layout.lock, "other", px=5_000)
    assert main(["rollback", "--wait-lock", "0.3"], settings) == EXIT_LOCKED


def test_status_says_where_you_are_in_words_and_names_the_prefixes_that_hold_models(
    settings: Settings, publisher: Publisher, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from recsvc.cli.main import main as recsvc_main

    csv = tmp_path / "p.csv"
    write_tiny(csv)
    assert main(tiny_train_args(csv), settings) == 0
    assert f"key prefix {settings.key_prefix!r} (publishing" in capsys.readouterr().err
    live = publisher.live_version()
    assert main(["status"], settings) == 0
    words = capsys.readouterr().out
    assert words.splitlines()[0] == f"prefix     {settings.key_prefix}"
    assert f"live       {live}, trained " in words and "(less than an hour ago)" in words
    assert "30 customers" in words and "previous   none (nothing to roll back to)" in words
    assert "A/B test   none" in words
    # An empty prefix exits 7 naming the ones that hold a model, before or after the command.
    empty = f"{settings.key_prefix}-empty"
    for argv in (["--prefix", empty, "status"], ["status", "--prefix", empty]):
        assert recsvc_main(argv, settings) == EXIT_NO_MODEL
        out, err = capsys.readouterr()
        assert f"nothing is published under the key prefix {empty!r}" in err
        assert settings.key_prefix in err.split("prefixes with a live model on this Redis:")[1]
        assert "live       none" in out
    assert recsvc_main(["status", "--json", "--prefix", settings.key_prefix], settings) == 0
    assert f'"prefix": "{settings.key_prefix}"' in capsys.readouterr().out
    assert recsvc_main(["--prefix", "no spaces", "status"], settings) == EXIT_BAD_INPUT
    assert "invalid --prefix 'no spaces'" in capsys.readouterr().err


def test_the_prefix_flag_is_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    from recsvc.cli.main import main as recsvc_main

    for argv in (["--help"], ["export", "--help"], ["status", "--help"], ["train", "--help"]):
        with pytest.raises(SystemExit):
            recsvc_main(argv)
        assert "RECSVC_KEY_PREFIX" in capsys.readouterr().out, argv
