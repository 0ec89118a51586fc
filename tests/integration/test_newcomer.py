"""What a new user and an operator meet first: the embedded Redis shared by processes,
the demo beside one's own model, the CLI's help, exit codes and inputs, numeric ids, and
the API documentation rendered offline in a real browser."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from pydantic import SecretStr

from recsvc.cli import common, serve
from recsvc.cli import main as cli
from recsvc.config import Settings
from recsvc.model import Layout
from recsvc.store.embedded import EmbeddedRedis
from tests.conftest import (
    GROUPED_ARGS,
    free_port,
    grouped_purchases,
    render,
    tiny_train_args,
    uvicorn_server,
    write_tiny,
)
from training.cli.main import main as train_main
from training.errors import EXIT_BAD_INPUT, EXIT_NO_MODEL

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Short path: unix socket paths are capped near 107 bytes.
    with tempfile.TemporaryDirectory(prefix="rn-") as d:
        yield Path(d) / "data"


# -- the embedded Redis outlives any one user ---------------------------------------------


class Holder:
    """Another process using the embedded Redis, until ``leave``."""

    def __init__(self, data_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.embedded_holder", str(data_dir)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.state = self.proc.stdout.readline().strip()

    def leave(self) -> None:
        out, _ = self.proc.communicate("\n", timeout=10)
        assert out.strip() == "left" and self.proc.returncode == 0


@pytest.mark.parametrize("first_out", ["starter", "joiner"])
def test_the_embedded_redis_stops_only_when_its_last_user_leaves(
    data_dir: Path, first_out: str
) -> None:
    starter = Holder(data_dir)
    joiner = Holder(data_dir)
    assert (starter.state, joiner.state) == ("launched", "joined")
    probe = EmbeddedRedis(data_dir)
    leaving, staying = (starter, joiner) if first_out == "starter" else (joiner, starter)
    leaving.leave()
    assert probe._answers(), "a user left and took the server with it"
    staying.leave()
    assert not probe._answers()


def test_a_killed_users_lease_does_not_keep_the_server_forever(data_dir: Path) -> None:
    killed = Holder(data_dir)
    killed.proc.kill()
    killed.proc.communicate(timeout=10)
    last = EmbeddedRedis(data_dir)
    last.start()
    assert not last.launched
    last.stop()  # the killed process's lease is swept: no live user is left
    assert not EmbeddedRedis(data_dir)._answers()


def _ready(base: str, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = httpx.get(f"{base}/readyz", timeout=2)
            if r.status_code == 200 or time.monotonic() > deadline:
                return r
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def test_a_trainer_finishing_leaves_a_running_server_ready(data_dir: Path, tmp_path: Path) -> None:
    """``recsvc serve`` first, then a trainer that comes and goes: the server stays ready
    and serves what the trainer published (before the fix: 503 until restarted)."""
    env = {**os.environ, "RECSVC_DATA_DIR": str(data_dir), "RECSVC_LOG_REQUESTS": "false"}
    env.pop("REDIS_URL", None)
    port = free_port()
    csv = tmp_path / "p.csv"
    write_tiny(csv)
    server = subprocess.Popen(
        [sys.executable, "-m", "recsvc", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert _ready(base, timeout=5).status_code == 503  # up, no model yet
        trained = subprocess.run(
            [sys.executable, "-m", "recsvc", *tiny_train_args(csv)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert trained.returncode == 0, trained.stderr
        version = trained.stdout.rsplit("version=", 1)[1].strip()
        r = _ready(base)
        assert r.status_code == 200 and r.json()["model_version"] == version
        cart = httpx.post(f"{base}/v1/recommendations/cart", json={"items": ["a"], "k": 1})
        assert cart.json()["cross_sell"][0]["item_id"] == "b"
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert not EmbeddedRedis(data_dir)._answers()  # the last user out stopped it


# -- the demo beside the store's own model ------------------------------------------------


@pytest.mark.slow
def test_the_demo_starts_after_training_ones_own_data(
    redis_url: str, layout: Layout, tmp_path: Path
) -> None:
    """The store's own model (near-perfect on its data) is live; the demo trains the
    sample, which that model's gate would refuse, under its own prefix and leaves the
    store's model alone."""
    settings = Settings(redis_url=redis_url, key_prefix=layout.prefix, data_dir=tmp_path)
    own = tmp_path / "own.csv"
    grouped_purchases().to_csv(own, index=False)
    assert train_main(["train", "--purchases", str(own), *GROUPED_ARGS], settings) == 0
    with redis.Redis.from_url(redis_url) as r:
        own_version = r.get(layout.live)
        demo = serve.demo_settings(settings)
        assert demo.key_prefix != settings.key_prefix
        assert serve.train_demo(demo) == 0
        assert r.get(layout.live) == own_version
        assert r.get(Layout(demo.key_prefix).live) not in (None, own_version)


def test_the_demo_is_a_sandbox_tokens_made_and_printed_and_local_pages_allowed(
    redis_url: str, layout: Layout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo makes an admin and an ingest token where none is set, hands them to another
    shell (``recsvc demo --env``), and lets pages on localhost (any port) call it; ``serve``
    keeps CORS closed and a set token is kept."""
    settings = Settings(redis_url=redis_url, key_prefix=layout.prefix, data_dir=tmp_path)
    assert cli.main(["demo", "--env"], settings) == common.EXIT_NO_MODEL
    assert "start `recsvc demo` first" in capsys.readouterr().err
    demo = serve.demo_settings(settings)
    assert demo.admin_token is not None and demo.ingest_token is not None
    assert demo.admin_token.get_secret_value() != demo.ingest_token.get_secret_value()
    assert (tmp_path / "demo.env").exists() is False
    path = serve.save_demo_env(demo)
    assert path.stat().st_mode & 0o077 == 0  # the owner's only
    assert cli.main(["demo", "--env"], settings) == 0
    printed = capsys.readouterr().out
    admin = demo.admin_token.get_secret_value()
    assert f"export RECSVC_ADMIN_TOKEN={admin}" in printed
    done = subprocess.run(
        ["bash", "-c", f'eval "$(cat {path})"; echo "$RECSVC_INGEST_TOKEN"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == demo.ingest_token.get_secret_value()
    kept = Settings(redis_url=redis_url, key_prefix=layout.prefix, admin_token=SecretStr("a" * 20))
    assert serve.demo_settings(kept).admin_token == kept.admin_token

    def preflight(base: str, origin: str) -> httpx.Response:
        return httpx.options(
            f"{base}/v1/recommendations/cart",
            headers={"origin": origin, "access-control-request-method": "POST"},
        )

    with uvicorn_server(demo) as base:
        for origin in ("http://localhost:5173", "http://127.0.0.1:8080", "http://localhost"):
            answer = preflight(base, origin)
            assert answer.status_code == 200, origin
            assert answer.headers["access-control-allow-origin"] == origin
        for origin in ("https://evil.example", "http://localhost.evil.example:80"):
            assert "access-control-allow-origin" not in preflight(base, origin).headers
        cart = httpx.post(
            f"{base}/v1/admin/stock",
            headers={"authorization": f"Bearer {admin}"},
            json={"items": []},
        )
        assert cart.status_code != 403  # the token is configured
    with uvicorn_server(settings) as base:
        assert "access-control-allow-origin" not in preflight(base, "http://localhost:5173").headers


# -- the CLI ------------------------------------------------------------------------------

COMMANDS = ["serve", "demo", "train", "evaluate", "rollback", "status", "export", "stock"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_every_default_and_no_markup(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "``" not in text and "**" not in text
    assert text.startswith(f"usage: recsvc {command}")
    # Every option that takes a value shows its default, or is required.
    options = re.split(r"\n  (?=-)", text.split("options:", 1)[1])[1:]
    for option in options:
        flag = option.split()[0].rstrip(",")
        takes_value = bool(re.match(r"^-[-\w]+(,\s-[-\w]+)*\s+[A-Z{]", option))
        if takes_value and flag not in ("--purchases", "--out", "-h"):
            assert "default" in " ".join(option.split()), f"{command} {flag}: no default"


def test_the_trainer_commands_run_from_recsvc_too(
    redis_url: str, layout: Layout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(redis_url=redis_url, key_prefix=layout.prefix, data_dir=tmp_path)
    assert cli.main(["rollback"], settings) == EXIT_NO_MODEL  # nothing to roll back: not 1
    assert "no previous version" in capsys.readouterr().err
    csv = tmp_path / "p.csv"
    write_tiny(csv)
    assert cli.main(tiny_train_args(csv), settings) == 0
    assert cli.main(["status", "--json"], settings) == 0
    assert '"live"' in capsys.readouterr().out


def test_export_exit_codes(
    redis_url: str, layout: Layout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(redis_url=redis_url, key_prefix=layout.prefix, data_dir=tmp_path)
    ids = tmp_path / "ids.txt"
    ids.write_text("1\n")
    out = tmp_path / "x.xlsx"
    assert cli.main(["export", "--customers", str(ids), "--out", str(out)], settings) == 2
    assert "cannot tell the format" in capsys.readouterr().err and not out.exists()
    jsonl = tmp_path / "x.jsonl"
    code = cli.main(["export", "--customers", str(ids), "--out", str(jsonl)], settings)
    assert code == common.EXIT_NO_MODEL  # no model is not "Redis unreachable" (3)
    assert "no model" in capsys.readouterr().err


def test_no_redis_url_where_the_embedded_default_is_forbidden(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(redis_url=None, allow_embedded_redis=False, data_dir=tmp_path)
    csv = tmp_path / "p.csv"
    write_tiny(csv)
    ids = tmp_path / "ids.txt"
    ids.write_text("1\n")
    for argv in (
        tiny_train_args(csv),
        ["status"],
        ["serve"],
        ["export", "--customers", str(ids), "--out", str(tmp_path / "o.jsonl")],
    ):
        assert cli.main(argv, settings) == EXIT_BAD_INPUT, argv
        assert "RECSVC_ALLOW_EMBEDDED_REDIS=false" in capsys.readouterr().err
    assert not (tmp_path / "redis.sock").exists()  # no throw-away Redis was started


def test_sample_writes_the_bundled_purchases(tmp_path: Path) -> None:
    out = tmp_path / "purchases.csv"
    assert cli.main(["sample", "--out", str(out)]) == 0
    assert out.read_text().splitlines()[0].startswith("InvoiceNo,StockCode")
    assert cli.main(["sample", "--out", str(out)]) == 2  # never overwrites


def test_a_line_total_column_gives_unit_prices_and_numeric_ids_work(
    redis_url: str, layout: Layout, tmp_path: Path
) -> None:
    settings = Settings(
        redis_url=redis_url, key_prefix=layout.prefix, data_dir=tmp_path, refresh_interval_s=0
    )
    csv = tmp_path / "p.csv"
    lines = ["cust,ord,item,qty,line_total"]
    for c in range(1, 31):  # over the trainer's floor: 60 baskets, 30 repeat customers
        for o in (1, 2):
            lines += [f"{c},{c}-{o},10,2,7.00", f"{c},{c}-{o},20,1,2.50"]
    lines += ["31,31-1,30,4,4.00"]
    csv.write_text("\n".join(lines) + "\n")
    args = ["train", "--purchases", str(csv), "--customer-col", "cust", "--item-col", "item"]
    args += ["--order-col", "ord", "--quantity-col", "qty", "--total-col", "line_total"]
    args += ["--force"]
    assert train_main(args, settings) == 0
    with uvicorn_server(settings) as base, httpx.Client(base_url=base) as http:
        r = http.post("/v1/recommendations/cart", json={"items": [10], "k": 2})
        assert r.status_code == 200, r.text
        assert r.json()["cross_sell"][0]["item_id"] == "20"
        prices: dict[str, float] = {}
        for item in (10, 20, 30):
            got = http.post("/v1/recommendations/cart", json={"items": [item], "k": 2})
            prices |= {s["item_id"]: s["price"] for s in got.json()["cross_sell"]}
        assert prices == {"10": 3.5, "20": 2.5, "30": 1.0}  # 7.00 / 2, 2.50 / 1, 4.00 / 4
        text = http.post("/v1/recommendations/cart", json={"items": ["10"], "k": 2})
        assert text.json()["cross_sell"][0]["item_id"] == "20"  # the same item as text
        batch = http.post("/v1/recommendations/batch", json={"requests": [{"customer_id": 1}]})
        assert batch.status_code == 200 and batch.json()["results"][0]["customer_id"] == "1"
        for bad in (True, 1.5, 10**19):
            refused = http.post("/v1/recommendations/cart", json={"items": [bad]})
            assert refused.status_code == 422, bad


# -- the API documentation, offline, in a real browser --------------------------------------


def test_docs_and_redoc_render_offline_in_chromium(
    chromium: str, settings: Settings, tmp_path: Path
) -> None:
    with uvicorn_server(settings) as base:
        page = httpx.get(f"{base}/docs").text
        assert "cdn" not in page.lower() and "https://" not in page
        dom = render(f"{base}/docs", tmp_path / "profile", "--dump-dom")
        paths = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
        assert {"/v1/recommendations/cart", "/v1/customers/{customer_id}/recommendations"} <= paths
        redoc = render(f"{base}/redoc", tmp_path / "profile", "--dump-dom")
        assert "/v1/recommendations/cart" in redoc and "redoc-wrap" in redoc
        shot = tmp_path / "docs.png"
        render(
            f"{base}/docs", tmp_path / "profile", "--window-size=1280,900", f"--screenshot={shot}"
        )
        assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
        assert httpx.get(f"{base}/docs/assets/nope.js").status_code == 404
