"""The nightly run end to end on a real Redis: evaluate, gate, refit, publish, report."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from recsvc.config import Settings
from recsvc.model import Layout
from tests.conftest import GROUPED_ARGS, grouped_purchases
from training.cli.main import main
from training.errors import EXIT_REFUSED
from training.evaluation import evaluate as ev
from training.evaluation.report import comparison
from training.publish import Publisher


def write(tmp_path: Path, name: str, mixed: bool = False, orders: int = 480) -> list[str]:
    path = tmp_path / f"{name}.parquet"
    grouped_purchases(mixed=mixed, orders=orders).to_parquet(path)
    return ["train", "--purchases", str(path), *GROUPED_ARGS]


def test_a_good_model_passes_the_gate_and_is_refit_on_all_data(
    settings: Settings, publisher: Publisher, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(write(settings.data_dir, "good"), settings) == 0
    out = capsys.readouterr().out
    assert "gate=passed" in out
    live = publisher.live_version()
    assert live is not None
    meta = publisher.meta(live)
    assert meta is not None
    served = meta["evaluation"]["served"]
    # The groups are learnable: far above popular items (about one in four at k=10).
    assert served["cart_hr@10"] > 0.9 > 0.5 > meta["evaluation"]["popularity"]["cart_hr@10"]
    assert meta["gate"]["passed"] is True
    # Refit on everything: the published model knows the test window's orders too.
    assert meta["counts"]["orders"] == 480
    assert meta["data_period"]["last"] > meta["evaluation"]["cutoff"]


def test_a_worse_candidate_is_refused_and_the_live_model_stays(
    settings: Settings, publisher: Publisher, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(write(settings.data_dir, "good"), settings) == 0
    live = publisher.live_version()
    capsys.readouterr()
    # Same volume, but orders mix all groups: nothing learnable, so the gate refuses.
    assert main(write(settings.data_dir, "mixed", mixed=True), settings) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert "quality gate refused the candidate" in err
    assert "below the live model's" in err
    assert publisher.live_version() == live
    assert publisher.previous_version() is None
    # --force publishes it anyway, and records that the gate was overridden.
    assert main([*write(settings.data_dir, "mixed", mixed=True), "--force"], settings) == 0
    forced = publisher.live_version()
    assert forced != live
    meta = publisher.meta(forced or "")
    assert meta is not None and meta["gate"]["forced"] is True


def test_a_truncated_export_is_refused(
    settings: Settings, publisher: Publisher, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(write(settings.data_dir, "good"), settings) == 0
    live = publisher.live_version()
    assert main(write(settings.data_dir, "short", orders=150), settings) == EXIT_REFUSED
    assert "is the export complete" in capsys.readouterr().err
    assert publisher.live_version() == live


async def test_the_report_is_stored_with_the_version_and_served(
    settings: Settings, layout: Layout, api: httpx.AsyncClient
) -> None:
    missing = await api.get("/v1/model/report")
    assert missing.status_code == 503 and missing.json()["error"]["code"] == "no_model"
    assert main(write(settings.data_dir, "good"), settings) == 0
    report = await api.get("/v1/model/report")
    assert report.status_code == 200
    doc = report.json()
    names = [m["name"] for m in doc["methods"]]
    for baseline in ("popularity", "co-occurrence (cosine)", "item-kNN BM25 (implicit)"):
        assert baseline in names
    assert doc["comparison"]["cart"]["at_least_as_good"] is True
    page = await api.get("/v1/model/report", params={"format": "html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text.count("<svg") >= 4 and "<script" not in page.text
    bad = await api.get("/v1/model/report", params={"format": "pdf"})
    assert bad.status_code == 422
    model = (await api.get("/v1/model")).json()
    assert model["params"]["ease_lambda"] == 20.0 and model["params"]["tuned"] is False


def test_evaluate_prints_the_table_and_writes_both_reports(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = write(tmp_path, "good")[1:]
    out_dir = tmp_path / "report"
    code = main(["evaluate", *args, "--tune-budget", "1", "--out", str(out_dir)], settings)
    assert code == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "recsvc (served)" in out and "EASE (tuned)" in out and "TIFU-KNN (tuned)" in out
    assert "cart completion, HR@10: served" in out and "parameters: weighting=" in out
    assert "95% interval" in out and "cases: " in out and "over 3 hide-one seeds" in out
    assert "  validation: " in out and "  reported: " in out and "upsell, " in out
    doc = orjson.loads((out_dir / "report.json").read_bytes())
    assert doc["tuning"]["trials"] and doc["tuning"]["validation_cutoff"] < doc["split"]["cutoff"]
    # The three windows: the choices are made before the reported window starts.
    windows = doc["windows"]
    assert windows["validation"]["to"] == windows["reported"]["from"] == doc["split"]["cutoff"]
    assert "served parameters" in windows["validation"]["chose"]
    # Every baseline family ran its grid (at least the fixed setting) on that window, and
    # chose a setting per task it answers.
    families = {b["family"]: b for b in doc["baselines"]}
    assert set(families) == {"co-occurrence", "item-kNN BM25", "ALS, cosine", "EASE", "TIFU-KNN"}
    assert all(b["trials"] for b in families.values())
    assert set(families["TIFU-KNN"]["best"]) == {"next", "next_new"}
    assert "[tune_baselines]" in captured.err
    methods = {m["name"]: m for m in doc["methods"]}
    served = methods["recsvc (served)"]
    low, high = served["intervals"]["cart/hr@10"]
    assert low <= served["headline"]["cart_hr@10"] <= high
    assert "cart_hr@10" not in methods["TIFU-KNN (tuned)"]["headline"]
    assert doc["comparison"]["cart"]["seeds"]["count"] == 3
    assert {m["name"] for m in doc["upsell"]["methods"]} == {
        "recsvc upsell (served)", "random in-band item", "most popular in-band item"
    }  # fmt: skip
    page = (out_dir / "report.html").read_text()
    assert "Tuning trials" in page and "<circle" in page and "Which window chose what" in page


def test_comparison_names_the_best_baseline_per_task() -> None:
    def result(name: str, cart: float, nxt: float) -> ev.MethodResult:
        return ev.MethodResult(
            name, {ev.CART: {"hr@10": cart}, ev.NEXT: {"recall@10": nxt}}, {ev.CART: 0.0}
        )

    results = [result(ev.SERVED, 0.30, 0.20), result("a", 0.25, 0.22), result("b", 0.31, 0.1)]
    c = comparison(results)
    assert c["cart"]["best_baseline"] == "b" and c["cart"]["at_least_as_good"] is False
    assert c["next"]["best_baseline"] == "a"
    assert c["next"]["margin"] == pytest.approx(-0.02)
    assert "verdict" not in c["cart"]  # no case-by-case scores: no interval claimed


def test_the_comparison_says_ahead_only_outside_the_paired_interval() -> None:
    rng = np.random.default_rng(0)

    def result(name: str, cart: np.ndarray) -> ev.MethodResult:
        metrics = {ev.CART: {"hr@10": float(cart.mean())}}
        return ev.MethodResult(name, metrics, {ev.CART: 0.0}, per_case={"cart/hr@10": cart})

    base = (rng.random(2000) < 0.3).astype(float)
    lifted = np.maximum(base, (rng.random(2000) < 0.1).astype(float))  # +7 points, paired
    tiny_lift = base.copy()
    tiny_lift[:3] = 1.0  # a few cases: inside the noise
    ahead = comparison([result(ev.SERVED, lifted), result("base", base)])["cart"]
    assert ahead["verdict"] == "ahead" and 0 < ahead["low"] < ahead["margin"] < ahead["high"]
    level = comparison([result(ev.SERVED, tiny_lift), result("base", base)])["cart"]
    assert level["verdict"] == "level within the noise" and level["low"] <= 0 <= level["high"]
    behind = comparison([result(ev.SERVED, base), result("lifted", lifted)])["cart"]
    assert behind["verdict"] == "behind" and behind["cases"] == 2000


def test_tuning_in_train_stores_the_trials_and_says_so(
    settings: Settings, publisher: Publisher
) -> None:
    assert main([*write(settings.data_dir, "good"), "--tune-budget", "1"], settings) == 0
    live = publisher.live_version()
    meta = publisher.meta(live or "")
    assert meta is not None and meta["params"]["tuned"] is True
    report = publisher.client.get(publisher.layout.report(live or ""))
    assert report is not None
    trials = orjson.loads(report)["tuning"]["trials"]
    assert trials and trials[0]["params"]["ease_lambda"] == meta["params"]["ease_lambda"]
