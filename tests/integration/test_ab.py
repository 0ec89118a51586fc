"""A/B tests between versions against a real Redis, and what recsvc sold: a sticky split
near its share, every answer naming its arm, promote and abort, the gate and rollback
still holding, stock changes reaching the candidate, attribution counters moving on
/metrics, and ``recsvc report sales``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import redis
from pydantic import SecretStr

from recsvc.api.app import create_app
from recsvc.cli.main import main as recsvc_main
from recsvc.config import Settings
from recsvc.experiments.attribution import origin
from recsvc.model import Layout
from tests.conftest import ADMIN_AUTH, ADMIN_TOKEN, GROUPED_ARGS, grouped_purchases, in_process
from training.cli.main import main as train_main
from training.errors import NoModelError
from training.publish import ModelPayload, Publisher

INGEST = "ingest-token-0123456789abc"
SHARE = 0.3


@pytest.fixture
def ab_versions(publisher: Publisher, block_model: ModelPayload) -> tuple[str, str]:
    """A live version and a candidate served to 30% of customers and visitors."""
    live = publisher.publish(block_model)
    candidate = publisher.publish(block_model, ab_share=SHARE)
    return live, candidate


@pytest.fixture
async def api_ab(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings.model_copy(
            update={"ingest_token": SecretStr(INGEST), "admin_token": SecretStr(ADMIN_TOKEN)}
        )
    )
    async with in_process(app) as c:
        c.app = app  # type: ignore[attr-defined]
        yield c


async def customer(api: httpx.AsyncClient, who: str) -> dict[str, Any]:
    r = await api.get(f"/v1/customers/{who}/recommendations", params={"k": 3})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_the_split_is_sticky_near_its_share_and_every_answer_names_its_arm(
    ab_versions: tuple[str, str], api_ab: httpx.AsyncClient
) -> None:
    live, candidate = ab_versions
    answers = {f"c{n % 2}-{n}": await customer(api_ab, f"c{n % 2}-{n}") for n in range(300)}
    arms = {who: a["arm"] for who, a in answers.items()}
    share = list(arms.values()).count("candidate") / len(arms)
    assert 0.2 < share < 0.4  # 300 draws at 0.3: sd 0.026
    for a in answers.values():
        assert a["model_version"] == (candidate if a["arm"] == "candidate" else live)
        named = origin(a["recommendation_id"])
        assert named is not None and (named.version, named.arm) == (a["model_version"], a["arm"])
        assert named.test == candidate
    for who in list(arms)[:40]:  # sticky, request after request
        assert (await customer(api_ab, who))["arm"] == arms[who]
    # A cart names nobody: the live version answers, outside the test.
    cart = await api_ab.post("/v1/recommendations/cart", json={"items": ["A1"]})
    assert (cart.json()["arm"], cart.json()["model_version"]) == ("live", live)
    seen = set()
    for n in range(60):  # a visitor id puts the cart in the test, stickily
        headers = {"x-visitor-id": f"visitor-{n}"}
        body = (await api_ab.post("/v1/recommendations/cart", json={"items": ["A1"]},
                                  headers=headers)).json()  # fmt: skip
        again = await api_ab.post("/v1/recommendations/cart", json={"items": ["A1"]},
                                  headers=headers)  # fmt: skip
        assert again.json()["arm"] == body["arm"] in ("control", "candidate")
        seen.add(body["arm"])
    assert seen == {"control", "candidate"}
    bad = await api_ab.post(
        "/v1/recommendations/cart", json={"items": ["A1"]}, headers={"x-visitor-id": " "}
    )
    assert bad.status_code == 422 and "x-visitor-id" in bad.json()["error"]["message"]
    # The batch sends each customer to their arm.
    asked = list(arms)[:50]
    batch = await api_ab.post(
        "/v1/recommendations/batch", json={"requests": [{"customer_id": c} for c in asked]}
    )
    results = batch.json()["results"]
    assert batch.json()["model_version"] == live
    assert [r["arm"] for r in results] == [arms[c] for c in asked]
    assert all(r["model_version"] == (candidate if r["arm"] == "candidate" else live)
               for r in results)  # fmt: skip


async def test_promote_and_abort_end_the_test_and_rollback_undoes_a_promotion(
    ab_versions: tuple[str, str],
    api_ab: httpx.AsyncClient,
    publisher: Publisher,
    block_model: ModelPayload,
    client: redis.Redis,
    layout: Layout,
) -> None:
    live, candidate = ab_versions
    assert publisher.experiment() is not None
    assert publisher.promote() == candidate
    assert (publisher.live_version(), publisher.previous_version()) == (candidate, live)
    assert publisher.candidate_version() is None and publisher.experiment() is None
    ended = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(layout.experiments))
    assert json.loads(ended[-1][1][b"experiment"])["outcome"] == "promoted"
    answer = await customer(api_ab, "c0-3")
    assert (answer["arm"], answer["model_version"]) == ("live", candidate)
    with pytest.raises(NoModelError, match="no A/B test"):
        publisher.promote()
    assert publisher.rollback() == live  # a promotion is undone like a switch
    # A new test, aborted: the live version stays and the candidate's keys are collected.
    other = publisher.publish(block_model, ab_share=0.5)
    assert publisher.abort() == other
    assert publisher.live_version() == live and publisher.experiment() is None
    assert not list(client.scan_iter(match=f"{layout.prefix}:model:{other}:*"))
    assert (await customer(api_ab, "c0-3"))["arm"] == "live"
    with pytest.raises(NoModelError, match="no A/B test"):
        publisher.abort()


def test_no_test_without_a_live_version(publisher: Publisher, block_model: ModelPayload) -> None:
    with pytest.raises(NoModelError, match="no live version"):
        publisher.publish(block_model, ab_share=0.2)
    assert publisher.live_version() is None and publisher.candidate_version() is None


async def test_a_stock_change_reaches_the_candidate_too(
    ab_versions: tuple[str, str], api_ab: httpx.AsyncClient
) -> None:
    who = [f"c0-{n}" for n in range(120)]
    before = [await customer(api_ab, c) for c in who]
    in_candidate = [c for c, a in zip(who, before, strict=True) if a["arm"] == "candidate"]
    shown = {s["item_id"] for a in before if a["arm"] == "candidate" for s in a["recommendations"]}
    assert in_candidate and shown
    gone = sorted(shown)[0]
    r = await api_ab.patch(f"/v1/admin/items/{gone}", json={"available": False},
                           headers=ADMIN_AUTH)  # fmt: skip
    assert r.status_code == 200
    for c in in_candidate:
        after = await customer(api_ab, c)
        assert after["arm"] == "candidate"
        assert gone not in {s["item_id"] for s in after["recommendations"]}


async def test_orders_are_credited_to_their_answers_once_on_metrics_and_in_the_report(
    ab_versions: tuple[str, str],
    api_ab: httpx.AsyncClient,
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, candidate = ab_versions
    auth = {"authorization": f"Bearer {INGEST}"}
    answers = {f"c0-{n}": await customer(api_ab, f"c0-{n}") for n in range(80)}
    orders = 0
    for n, (who, a) in enumerate(answers.items()):
        if a["arm"] != "candidate" and n % 4:
            continue  # candidate answers sell every time, control ones one time in four
        first = a["recommendations"][0]
        event = {
            "order_id": f"ab-{n}",
            "customer_id": who,
            "purchased_at": "2024-03-20T10:00:00Z",
            "items": [{"item_id": first["item_id"], "quantity": 2, "price": 5.0,
                       "recommendation_id": a["recommendation_id"], "slot": "recommendations",
                       "position": 1},
                      {"item_id": "B5", "price": 1.0}],
        }  # fmt: skip
        r = await api_ab.post("/v1/events/orders", json=event, headers=auth)
        assert r.status_code == 202 and r.json()["attributed_lines"] == 1, r.text
        again = await api_ab.post("/v1/events/orders", json=event, headers=auth)
        assert again.json()["duplicate"] and again.json()["attributed_lines"] == 0
        orders += 1
    foreign = {"order_id": "ab-x", "customer_id": "c0-1", "purchased_at": "2024-03-20T10:00:00Z",
               "recommendation_id": "not-one-of-ours", "items": [{"item_id": "A1"}]}  # fmt: skip
    r = await api_ab.post("/v1/events/orders", json=foreign, headers=auth)
    assert r.status_code == 202 and r.json()["unknown_recommendations"] == 1
    await api_ab.app.state.arms.flush()  # type: ignore[attr-defined]
    page = (await api_ab.get("/metrics")).text
    arm_orders = {a: sum(1 for n, x in enumerate(answers.values())
                         if x["arm"] == a and (a == "candidate" or n % 4 == 0))
                  for a in ("control", "candidate")}  # fmt: skip
    assert arm_orders["candidate"] + arm_orders["control"] == orders
    assert (
        f'recsvc_attributed_orders_total{{arm="candidate",slot="recommendations",'
        f'version="{candidate}"}} {float(arm_orders["candidate"])}'
    ) in page
    assert (
        f'recsvc_attributed_revenue_total{{arm="candidate",slot="recommendations",'
        f'version="{candidate}"}} {10.0 * arm_orders["candidate"]}'
    ) in page
    served = sum(1 for a in answers.values() if a["arm"] == "candidate")
    assert (
        f'recsvc_arm_answers_total{{arm="candidate",version="{candidate}"}} {float(served)}' in page
    )

    out, html = tmp_path / "sales.json", tmp_path / "sales.html"
    code = await asyncio.to_thread(
        recsvc_main, ["report", "sales", "--json", str(out), "--html", str(html)], settings
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert f"A/B test of candidate {candidate}" in printed
    report = json.loads(out.read_text())
    (test,) = report["ab_tests"]
    assert test["test"] == candidate
    assert test["answers"] == {"control": 80 - served, "candidate": served}
    assert test["orders"] == arm_orders
    revenue = test["revenue_per_answer"]
    assert revenue["candidate"] == pytest.approx(10.0)  # every candidate answer sold 10.0
    assert revenue["difference"] > 0 and revenue["low"] <= revenue["difference"] <= revenue["high"]
    assert "<svg" in html.read_text() and candidate in html.read_text()
    positions = {(p["slot"], p["position"]): p["lines"] for p in report["positions"]}
    assert positions == {("recommendations", 1): float(orders)}
    backwards = ["report", "sales", "--since", "2030-01-02", "--until", "2030-01-01"]
    assert await asyncio.to_thread(recsvc_main, backwards, settings) == 2


def test_the_trainer_cli_runs_a_test_gated_promoted_and_aborted(
    tmp_path: Path, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    grouped_purchases().to_csv(good, index=False)
    grouped_purchases(mixed=True).to_csv(bad, index=False)
    train = ["train", "--purchases", str(good), *GROUPED_ARGS]
    assert train_main(train, settings) == 0
    assert train_main(["promote"], settings) == 7  # no test running
    # The gate still judges a candidate: one that learned nothing is refused.
    bad_train = ["train", "--purchases", str(bad), *GROUPED_ARGS, "--ab-share", "0.5"]
    assert train_main(bad_train, settings) == 5
    assert train_main([*train, "--ab-share", "0.25"], settings) == 0
    capsys.readouterr()
    assert train_main(["status", "--json"], settings) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["candidate"] and status["experiment"]["share"] == 0.25
    assert status["experiment"]["control"] == status["live"]
    assert train_main(["abort"], settings) == 0
    assert train_main(["abort"], settings) == 7
    assert train_main([*train, "--ab-share", "0.5"], settings) == 0
    capsys.readouterr()
    assert train_main(["status", "--json"], settings) == 0
    candidate = json.loads(capsys.readouterr().out)["candidate"]
    assert recsvc_main(["promote"], settings) == 0
    capsys.readouterr()
    assert train_main(["status", "--json"], settings) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["live"] == candidate and status["candidate"] is None
    with pytest.raises(SystemExit):
        train_main([*train, "--ab-share", "1.5"], settings)
