"""The Dockerfile and Kubernetes manifests agree with the code they run.

CI validates the manifests against the Kubernetes schemas and lints the Dockerfile; these
tests check what a schema cannot: that names, ports, paths and commands match the code.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from recsvc.app import create_app
from recsvc.cli import main as recsvc_main
from recsvc.config import Settings
from training import memory
from training.cli import _parser as trainer_parser

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"


def docs() -> list[dict[str, Any]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            out += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def find(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs() if d["kind"] == kind and d["metadata"]["name"] == name)


def env_names() -> set[str]:
    names: set[str] = set()
    for field, info in Settings.model_fields.items():
        names.add(f"RECSVC_{field.upper()}")
        alias = info.validation_alias
        if alias is not None and hasattr(alias, "choices"):
            names.update(str(c) for c in alias.choices if str(c).isupper())
    return names


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_every_configured_variable_is_a_setting() -> None:
    known = env_names()
    config = find("ConfigMap", "recsvc")["data"]
    secret = find("Secret", "recsvc")["stringData"]
    assert set(config) | set(secret) <= known, (set(config) | set(secret)) - known
    assert {"REDIS_URL", "RECSVC_ADMIN_TOKEN"} <= set(secret)
    assert int(config["RECSVC_PORT"]) == Settings().port


def test_the_deployment_probes_ports_and_command_match_the_app() -> None:
    deployment = find("Deployment", "recsvc")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    paths = set(create_app(Settings()).openapi()["paths"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz" in paths
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz" in paths
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] in paths
    assert container["ports"][0]["containerPort"] == Settings().port
    assert container["command"] == ["recsvc", "serve"]
    assert deployment["spec"]["replicas"] >= 2
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsUser"] == dockerfile_user()
    with pytest.raises(SystemExit) as parsed:
        recsvc_main([*container["command"][1:], "--help"])
    assert parsed.value.code == 0


def test_the_cronjob_runs_a_trainer_command_that_parses() -> None:
    cron = find("CronJob", "recsvc-train")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] >= 0 and job["activeDeadlineSeconds"] > 0
    (container,) = job["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:3] == ["python", "-m", "training"]
    args = trainer_parser().parse_args(command[3:])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(args.purchases.parent) in mounts


def dockerfile_user() -> int:
    text = (ROOT / "Dockerfile").read_text()
    return int(re.findall(r"^USER (\d+)", text, re.M)[-1])


def test_the_image_exposes_the_port_and_runs_the_service() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert f"EXPOSE {Settings().port}" in text
    cmd = re.findall(r"^CMD (.+)$", text, re.M)[-1]
    assert shlex.split(cmd.replace('"', "").strip("[]").replace(",", " ")) == ["recsvc", "serve"]
    assert "/healthz" in text


def test_trainer_memory_budget_fits_the_cronjob_limit() -> None:
    """The budget the trainer plans within stays under the pod's limit, with headroom for
    what a budget cannot see (the interpreter, page cache of the file it reads)."""
    job = find("CronJob", "recsvc-train")
    container = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    limit = memory.parse_size(container["resources"]["limits"]["memory"])
    configured = find("ConfigMap", "recsvc")["data"].get("RECSVC_TRAIN_MEMORY_BUDGET")
    args = container["command"]
    flag = args[args.index("--memory-budget") + 1] if "--memory-budget" in args else None
    budget = memory.parse_size(flag or configured or memory.DEFAULT_BUDGET)
    assert budget <= limit * 7 // 8, (budget, limit)
    # And the default alone fits too, for a CronJob that drops the ConfigMap entry.
    assert memory.parse_size(memory.DEFAULT_BUDGET) <= limit * 7 // 8
