"""The shipped Grafana dashboard and Prometheus alerts: every recsvc metric they name is on
a real ``/metrics``, the alert rules pass ``promtool check rules``, and their unit tests
(``k8s/monitoring/prometheus-rules.test.yaml``: each alert fires on a broken service and
stays quiet on a healthy one) pass ``promtool test rules``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from recsvc.api.app import create_app
from recsvc.config import Settings
from tests.conftest import in_process

MONITORING = Path(__file__).resolve().parents[2] / "k8s" / "monitoring"
METRIC = re.compile(r"\b([a-z_]+_[a-z_]+)(?=\s*[{\[(])|\b(recsvc_[a-z_]+)\b")
NOT_METRICS = {"histogram_quantile", "humanize_duration"}
FROM_KUBE_STATE_METRICS = {"kube_job_status_failed"}
"""The one metric the alerts take from elsewhere: kube-state-metrics' job status."""


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def rule_exprs() -> list[str]:
    doc = yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())
    assert doc["kind"] == "PrometheusRule" and doc["apiVersion"] == "monitoring.coreos.com/v1"
    return [str(r["expr"]) for g in doc["spec"]["groups"] for r in g["rules"]]


def metrics_named(expr: str) -> set[str]:
    """Metric names in a PromQL expression (words followed by a selector or a range, and
    every ``recsvc_`` word), functions and aggregations left out."""
    names = {a or b for a, b in METRIC.findall(expr)}
    return {n for n in names if n not in NOT_METRICS and not n.endswith(("_over_time",))}


def exposed(text: str) -> set[str]:
    """Every series name on a Prometheus text page, histogram parts included."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def tool(name: str, package: str) -> str:
    """A command CI installs from Debian: a failure in CI, a skip elsewhere."""
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must install Debian's {package} for {name} (.ci/run does)")
        pytest.skip(f"needs {name} (apt-get install {package}), as .ci/run installs")
    return found


@pytest.fixture
def promtool() -> str:
    return tool("promtool", "prometheus")


def promtool_run(promtool: str, where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=where, capture_output=True, text=True, timeout=60)


async def scraped(settings: Settings) -> set[str]:
    """A real /metrics after a cart, a customer answer and an attributed order event."""
    app = create_app(settings.model_copy(update={"ingest_token": SecretStr("i" * 20)}))
    async with in_process(app) as api:
        cart = await api.post("/v1/recommendations/cart", json={"items": ["A1"]})
        assert cart.status_code == 200
        await api.get("/v1/customers/c0-1/recommendations")
        rec = cart.json()["recommendation_id"]
        event: dict[str, Any] = {
            "order_id": "m-1",
            "customer_id": "c0-1",
            "purchased_at": "2024-03-20T10:00:00Z",
            "items": [{"item_id": "A2", "price": 2.0, "recommendation_id": rec,
                       "slot": "cross_sell", "position": 1}],
        }  # fmt: skip
        auth = {"authorization": "Bearer " + "i" * 20}
        assert (await api.post("/v1/events/orders", json=event, headers=auth)).status_code == 202
        await app.state.arms.flush()
        page = await api.get("/metrics")
        assert page.status_code == 200
        return exposed(page.text)


async def test_the_dashboard_and_the_alerts_name_only_metrics_recsvc_exposes(
    settings: Settings, published: str
) -> None:
    names = await scraped(settings)
    panels = [metrics_named(e) for e in dashboard_exprs()]
    rules = [metrics_named(e) for e in rule_exprs()]
    assert all(panels) and all(rules), "every query names a metric"
    used = set().union(*panels, *rules)
    # The dashboard covers what the issue asks of it.
    for needed in (
        "recsvc_request_duration_seconds_bucket",  # latency by route
        "recsvc_responses_total",  # errors
        "recsvc_fallback_answers_total",  # fallback share
        "recsvc_model_age_seconds",  # model age
        "recsvc_attributed_revenue_total",  # attributed revenue by arm
    ):
        assert needed in set().union(*panels)
    missing = sorted(n for n in used - FROM_KUBE_STATE_METRICS if n not in names)
    assert not missing, f"named by the dashboard or alerts but not on /metrics: {missing}"
    assert "recsvc_attributed_revenue_total" in names and "recsvc_arm_answers_total" in names


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """The PrometheusRule's groups as a plain rules file (``full.yaml``), and beside its
    unit tests without annotations (which the unit tests would otherwise have to repeat
    word for word; ``promtool check rules`` checks their templates)."""
    doc = yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())
    groups = doc["spec"]["groups"]
    (tmp_path / "full.yaml").write_text(yaml.safe_dump({"groups": groups}))
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "recsvc-rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    shutil.copy(MONITORING / "prometheus-rules.test.yaml", tmp_path / "rules.test.yaml")
    return tmp_path


def test_the_alert_rules_pass_promtool_and_their_unit_tests(promtool: str, rules_dir: Path) -> None:
    checked = promtool_run(promtool, rules_dir, "check", "rules", "full.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout + checked.stderr
    tested = promtool_run(promtool, rules_dir, "test", "rules", "rules.test.yaml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_an_alert_unit_test_can_fail(promtool: str, rules_dir: Path) -> None:
    """The unit tests are not vacuous: a wrong expectation fails them."""
    spec = yaml.safe_load((rules_dir / "rules.test.yaml").read_text())
    healthy = spec["tests"][1]["alert_rule_test"]
    healthy[0]["exp_alerts"] = [{"exp_labels": {"severity": "warning"}}]  # stale? it is not
    (rules_dir / "rules.test.yaml").write_text(yaml.safe_dump(spec))
    tested = promtool_run(promtool, rules_dir, "test", "rules", "rules.test.yaml")
    assert tested.returncode != 0


def test_the_monitoring_kustomization_builds_the_rule_and_the_dashboard() -> None:
    kubectl = tool("kubectl", "kubernetes-client")
    built = subprocess.run(
        [kubectl, "kustomize", str(MONITORING)], capture_output=True, text=True, timeout=60
    )
    assert built.returncode == 0, built.stderr
    docs = {d["kind"]: d for d in yaml.safe_load_all(built.stdout)}
    assert set(docs) == {"ConfigMap", "PrometheusRule"}
    board = docs["ConfigMap"]
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["grafana-dashboard.json"])["uid"] == "recsvc"
