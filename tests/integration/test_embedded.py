"""The embedded default: a real redis-server kept in a data directory, shared by processes."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from recsvc.store.embedded import EmbeddedRedis, EmbeddedRedisError
from tests.conftest import tiny_train_args, write_tiny


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Short path: unix socket paths are capped near 107 bytes.
    with tempfile.TemporaryDirectory(prefix="rs-") as d:
        yield Path(d) / "data"


def test_starts_joins_and_persists(data_dir: Path) -> None:
    owner = EmbeddedRedis(data_dir)
    url = owner.start()
    assert owner.launched
    guest = EmbeddedRedis(data_dir)
    assert guest.start() == url and not guest.launched  # joins the running server
    with redis.Redis.from_url(url) as c:
        c.set("k", "kept")
    guest.stop()  # one user leaving never stops a server another uses
    with redis.Redis.from_url(url) as c:
        assert c.get("k") == b"kept"
    owner.stop()
    assert not EmbeddedRedis(data_dir)._answers()
    again = EmbeddedRedis(data_dir)
    with redis.Redis.from_url(again.start()) as c:
        assert c.get("k") == b"kept"  # saved on shutdown, loaded on start
    again.stop()


def test_too_long_a_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedRedisError, match="too long"):
        EmbeddedRedis(tmp_path / ("x" * 120)).start()


async def test_trainer_and_service_share_the_embedded_redis(data_dir: Path, tmp_path: Path) -> None:
    import httpx

    from recsvc.api.app import create_app
    from recsvc.config import Settings
    from training.cli.main import main

    settings = Settings(redis_url=None, data_dir=data_dir)
    csv = tmp_path / "p.csv"
    write_tiny(csv)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert (
            main(
                tiny_train_args(csv),
                settings,
            )
            == 0
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://recsvc") as c:
            r = await c.post("/v1/recommendations/cart", json={"items": ["a"], "k": 1})
            assert r.status_code == 200
            assert r.json()["cross_sell"][0]["item_id"] == "b"
