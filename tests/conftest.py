"""Shared fixtures: one real redis-server per test session, a key prefix per test.

Every test gets its own ``Layout`` prefix on the session's server, so tests share one
process without seeing each other's models.
"""

from __future__ import annotations

import gc
import io
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import pandas as pd
import pytest
import redis
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from recsvc.api.app import create_app
from recsvc.api.protocol import ServiceConfig
from recsvc.config import HeadLimits, Settings
from recsvc.model import Layout
from recsvc.store import backend as storage
from recsvc.store import localcluster
from recsvc.store.embedded import redis_server_binary
from training.engines.local import Stages, TrainConfig, fit
from training.publish import ModelPayload, Publisher
from training.stages import ingest


@asynccontextmanager
async def in_process(app: FastAPI, http_timeout: float = 5.0) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` in-process with its lifespan run, spoken to over ASGI."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://recsvc", timeout=http_timeout
        ) as c:
            yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_cluster_port() -> int:
    """A free port whose cluster bus port (10,000 above it) is free too."""
    for _ in range(100):
        port = free_port()
        if port + 10000 > 65535:
            port = 20000 + port % 30000
        if cluster_port_free(port):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def cluster_port_free(port: int) -> bool:
    """Whether a cluster node could listen on ``port`` and on its bus port."""
    try:
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", port))
            b.bind(("127.0.0.1", port + 10000))
        return True
    except OSError:
        return False


@contextmanager
def redis_server(
    workdir: Path, *options: str, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real redis-server on a free port (extra ``options`` as on its command line)."""
    port = port or free_port()
    proc = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(workdir), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # in case a test left it stopped
            proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def uvicorn_server(
    settings: Settings, http: Any = None, head_limits: HeadLimits | None = None
) -> Iterator[str]:
    """The app under uvicorn on a free port, in a thread: real HTTP, real parsing (with
    another of the service's HTTP protocols, or other head limits, when given)."""
    port = free_port()
    config = ServiceConfig(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        head_limits=head_limits or settings.head_limits,
        # Connections a test left open (slow heads, held sockets) are closed after 2 s,
        # so the lifespan's shutdown, which closes the Redis pool, always runs.
        timeout_graceful_shutdown=2,
        **({"http": http} if http is not None else {}),
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=30)
        if thread.is_alive():
            raise RuntimeError("uvicorn did not shut down within 30 s: its Redis pool leaks")


@contextmanager
def redis_cluster(workdir: Path, masters: int = 3) -> Iterator[list[str]]:
    """A real Redis Cluster of ``masters`` masters on free ports, the slots split evenly
    (``CLUSTER ADDSLOTS``, then ``CLUSTER MEET``); yields each master's URL."""
    with ExitStack() as stack:
        urls = []
        for n in range(masters):
            node = workdir / f"node{n}"
            node.mkdir()
            url, _ = stack.enter_context(
                redis_server(
                    node, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "5000", port=free_cluster_port(),
                )
            )  # fmt: skip
            urls.append(url)
        nodes = [stack.enter_context(redis.Redis.from_url(u)) for u in urls]
        localcluster.form(nodes)
        yield urls


@pytest.fixture(scope="session")
def cluster_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """One 3-master Redis Cluster per test session (prefixes keep the tests apart)."""
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as urls:
        yield urls


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as (url, _):
        yield url


BOTH_BACKENDS = pytest.mark.parametrize("backend_kind", ["single", "cluster"], indirect=True)
"""Runs a test on a single Redis node and on the session's 3-master Redis Cluster: the
``layout``, ``client``, ``store_url`` and ``settings`` fixtures follow the backend."""


@pytest.fixture
def backend_kind(request: pytest.FixtureRequest) -> str:
    """``single`` unless a test asks for both backends (``BOTH_BACKENDS``)."""
    return str(getattr(request, "param", "single"))


@pytest.fixture
def cluster(backend_kind: str) -> bool:
    return backend_kind == "cluster"


@pytest.fixture
def store_url(request: pytest.FixtureRequest, cluster: bool) -> str:
    """The URL of the backend under test: the single node, or a cluster master."""
    if cluster:
        return str(request.getfixturevalue("cluster_urls")[0])
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
def layout(cluster: bool) -> Layout:
    prefix = f"t-{uuid.uuid4().hex[:10]}"
    return Layout.for_cluster(prefix) if cluster else Layout(prefix=prefix)


@pytest.fixture
def client(store_url: str, cluster: bool) -> Iterator[redis.Redis]:
    c = storage.sync_client(store_url, cluster)
    yield cast(redis.Redis, c)
    storage.close_sync(c)


@pytest.fixture
def publisher(client: redis.Redis, layout: Layout) -> Publisher:
    return Publisher(client, layout)


@pytest.fixture
def settings(store_url: str, cluster: bool, layout: Layout, tmp_path: Path) -> Settings:
    # Reads the pointer on every request, so a test sees its publish at once; the watcher
    # (the default) and its bound are tested in test_serving_cache.py.
    return Settings(
        redis_url=store_url,
        redis_cluster=cluster,
        key_prefix=layout.prefix,
        data_dir=tmp_path,
        refresh_interval_s=0,
    )


# -- synthetic purchases with known answers -----------------------------------------------

GROUP_A = ["A1", "A2", "A3", "A4", "A5"]
GROUP_B = ["B1", "B2", "B3", "B4", "B5"]
LONER = "Z9"  # bought alone, so it has no co-purchase evidence


def block_baskets(orders_per_group: int = 60) -> pd.DataFrame:
    """Orders never mix the groups: A items' right neighbours are A items, B's are B's.

    The same idea as implicit's checker-board test matrix, as purchase lines. Within a
    group, A1 and A2 are bought together most often, so A2 is A1's first neighbour.
    """
    rows: list[dict[str, object]] = []
    for g, group in enumerate((GROUP_A, GROUP_B)):
        for o in range(orders_per_group):
            customer = f"c{g}-{o % 20}"
            order = f"{g}{o:04d}"
            day = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=o)
            picks = [group[0], group[1]] if o % 2 == 0 else [group[o % 5], group[(o + 2) % 5]]
            if o % 3 == 0:
                picks.append(group[(o + 3) % 5])
            for item in dict.fromkeys(picks):
                rows.append(
                    {
                        "customer": customer,
                        "item": item,
                        "order": order,
                        "quantity": 1.0,
                        "timestamp": day,
                        "price": 2.5,
                        "description": f"thing {item}",
                    }
                )
    rows.append(
        {
            "customer": "lonely",
            "item": LONER,
            "order": "L1",
            "quantity": 1.0,
            "timestamp": pd.Timestamp("2024-03-01", tz="UTC"),
            "price": 1.0,
            "description": "loner",
        }
    )
    return pd.DataFrame(rows)


TEST_CONFIG = TrainConfig(columns=ingest.Columns(customer="customer", item="item"), top_n=8)


@pytest.fixture(scope="session")
def block_model() -> ModelPayload:
    return fit(block_baskets(), TEST_CONFIG, Stages(out=io.StringIO()))


@pytest.fixture
def published(publisher: Publisher, block_model: ModelPayload) -> str:
    return publisher.publish(block_model)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process, its lifespan run, spoken to over ASGI."""
    app = create_app(settings)
    async with in_process(app) as c:
        yield c


def grouped_purchases(
    groups: int = 8,
    group_size: int = 5,
    orders: int = 480,
    days: int = 120,
    mixed: bool = False,
    seed: int = 0,
    customers_per_group: int = 6,
) -> pd.DataFrame:
    """Dated purchase lines whose orders stay within one group of items.

    Large enough for a temporal holdout to have cart and history cases, with 40 items so
    that HR@10 separates a model that learned the groups (near 1) from popularity (near
    one in four). ``mixed`` draws each order's items from all groups instead: the same
    volume of data with nothing to learn, the candidate a gate must refuse.
    """
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    rows: list[dict[str, object]] = []
    for o in range(orders):
        g = int(rng.integers(groups))
        size = int(rng.integers(2, 5))
        if mixed:
            picks = rng.choice(groups * group_size, size=size, replace=False)
        else:
            picks = g * group_size + rng.choice(group_size, size=size, replace=False)
        customer = f"c{g}-{int(rng.integers(customers_per_group))}"
        when = start + pd.Timedelta(hours=int(o * days * 24 / orders))
        for item in picks.tolist():
            rows.append(
                {
                    "customer": customer,
                    "item": f"I{item:03d}",
                    "order": f"o{o:05d}",
                    "quantity": 1.0,
                    "timestamp": when,
                    "price": 1.0 + item % 7,
                    "description": f"item {item}",
                }
            )
    return pd.DataFrame(rows)


GROUPED_ARGS = [
    "--customer-col", "customer", "--item-col", "item", "--order-col", "order",
    "--timestamp-col", "timestamp", "--quantity-col", "quantity", "--price-col", "price",
    "--description-col", "description",
]  # fmt: skip
"""Trainer CLI flags naming the columns of ``grouped_purchases``."""


SHOP_CATALOG = (
    "item_id,title,category,price,available,margin\n"
    "M1,Plain mug,mugs,5.00,true,0.2\n"
    "M2,Glazed mug,mugs,8.00,true,0.3\n"
    "M3,Artisan mug,mugs,12.00,true,0.4\n"
    "T1,Breakfast tea,tea,3.00,true,\n"
    "SP,Tea spoon,cutlery,1.00,yes,\n"
)
"""Prices and categories for ``shop_purchases``: M2 is within 2x of M1, M3 is not."""


SHOP_TITLES = {
    "M1": "Stoneware mug, plain", "M2": "Stoneware mug, glazed",
    "M3": "Stoneware mug, artisan", "T1": "Breakfast tea", "SP": "Tea spoon",
}  # fmt: skip
"""The purchase lines' descriptions: without the catalog, the titles say the mugs are one
kind of item (two distinctive words in common, ``training.stages.kinds``)."""


def shop_purchases(customers: int = 60) -> pd.DataFrame:
    """Mugs are alternatives (the same customers buy each, never two in one order); tea
    and a spoon complement every mug (bought in the same orders)."""
    rows: list[dict[str, object]] = []
    start = pd.Timestamp("2024-01-01", tz="UTC")
    for c in range(customers):
        for o in range(4):
            mug = f"M{(c + o) % 3 + 1}"
            items = [mug, "T1"] + (["SP"] if o % 2 else [])
            for item in items:
                rows.append(
                    {
                        "customer": f"s{c}",
                        "item": item,
                        "order": f"s{c}-{o}",
                        "quantity": 1.0,
                        "timestamp": start + pd.Timedelta(days=c % 30 + 30 * o),
                        "price": 1.0,
                        "description": SHOP_TITLES[item],
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def shop_model(tmp_path_factory: pytest.TempPathFactory) -> ModelPayload:
    """A model with a catalog, alternatives and stored customers: every manifest part."""
    from training.stages import catalog as cat

    path = tmp_path_factory.mktemp("shop") / "catalog.csv"
    path.write_text(SHOP_CATALOG)
    catalog, _ = cat.read_catalog(path)
    return fit(shop_purchases(), TEST_CONFIG, Stages(io.StringIO()), catalog=catalog)


ADMIN_TOKEN = "s3cret-token-of-24-chars"
ADMIN_AUTH = {"authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def shop(
    settings: Settings, publisher: Publisher, shop_model: ModelPayload
) -> AsyncIterator[httpx.AsyncClient]:
    """The shop model published, and the app with the admin API on, over ASGI."""
    publisher.publish(shop_model)
    app = create_app(settings.model_copy(update={"admin_token": SecretStr(ADMIN_TOKEN)}))
    async with in_process(app) as c:
        yield c


def write_tiny(csv: Path) -> Path:
    """A small undated CSV (c customer, o order, i item) just over the trainer's floor
    (``training.stages.floor``): 30 customers with two orders of two items each."""
    lines = ["c,o,i"]
    for c in range(30):
        lines += [f"{c},{c}-1,a", f"{c},{c}-1,b", f"{c},{c}-2,a", f"{c},{c}-2,{'bc'[c % 2]}"]
    csv.write_text("\n".join(lines) + "\n")
    return csv


def tiny_train_args(csv: Path, *extra: str) -> list[str]:
    """``train`` on a small undated CSV as ``write_tiny`` writes it.

    Undated lines cannot be evaluated, so the gate would refuse them: ``--force``.
    """
    return ["train", "--purchases", str(csv), "--customer-col", "c", "--item-col", "i",
            "--order-col", "o", "--force", *extra]  # fmt: skip


# -- a real browser ----------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def render(url: str, profile: Path, *extra: str) -> str:
    """What headless Chromium shows at ``url`` with every host but this machine unreachable
    (a CDN script would fail to load, and the page would stay blank)."""
    assert CHROMIUM is not None
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}",
         "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
         "--virtual-time-budget=15000", *extra, url],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture
def chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (.ci/run does)")
        pytest.skip("needs Debian's chromium (apt-get install chromium), as .ci/run installs")
    return CHROMIUM


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks what a test needs beyond Python and one Redis node, from its fixtures and
    parameters, so a quick local loop can leave it out (``make quick``)."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "chromium" in names:
            item.add_marker(pytest.mark.browser)
        if "cluster_urls" in names or "cluster" in (
            params.get("backend_kind"),
            params.get("backend"),
        ):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test() -> Iterator[None]:
    """A socket or Redis connection a test leaves open is reported (warnings are errors)
    at that test, not at the session's end, where pytest's last collection finds it with
    no test to blame (about 90 s over the suite)."""
    yield
    gc.collect()
