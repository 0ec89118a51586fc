"""The Dockerfile and Kubernetes manifests agree with the code they run.

CI validates every overlay's build against the Kubernetes schemas and lints the
Dockerfile; these tests check what a schema cannot: that names, ports, paths and commands
match the code, and that each overlay builds into what an operator can apply as shipped.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from recsvc.api.app import create_app
from recsvc.cli.main import main as recsvc_main
from recsvc.config import Settings
from training import memory
from training.cli.main import parser as trainer_parser
from training.publish import LOCK_TTL_MS

pytestmark = pytest.mark.k8s

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
BASE = K8S / "base"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
SECRET_KEYS = {"REDIS_URL", "RECSVC_ADMIN_TOKEN", "REDIS_PASSWORD", "PURCHASES_URL"}
"""What the README's secrets.env holds: the Secret every overlay generates from it."""
MANIFEST_ONLY = {"PURCHASES_FILE", "RECSVC_TRAIN_ARGS"}
"""ConfigMap keys the manifests use themselves (the trainer job's command), not settings."""


def docs() -> list[dict[str, Any]]:
    out = []
    for path in sorted(BASE.glob("*.yaml")):
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
    listed = set(yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert not list(K8S.rglob("secret*.yaml")), "no Secret is committed: overlays generate it"


def test_every_configured_variable_is_a_setting() -> None:
    known = env_names()
    config = find("ConfigMap", "recsvc")["data"]
    assert set(config) - MANIFEST_ONLY <= known, set(config) - MANIFEST_ONLY - known
    assert {"REDIS_URL", "RECSVC_ADMIN_TOKEN"} <= SECRET_KEYS & known
    assert int(config["RECSVC_PORT"]) == Settings().port
    assert config["RECSVC_ALLOW_EMBEDDED_REDIS"] == "false"
    readme = (ROOT / "README.md").read_text()
    assert all(f"{key}=" in readme for key in SECRET_KEYS)


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


def trainer_command() -> list[str]:
    """The CronJob's trainer command as its shell runs it, ConfigMap values filled in."""
    cron = find("CronJob", "recsvc-train")
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    shell, flag, script = container["command"]
    assert (shell, flag) == ("sh", "-c")
    config = find("ConfigMap", "recsvc")["data"]
    for key, value in config.items():
        script = script.replace(f"${key}", value)
    assert "$" not in script, script
    return shlex.split(script)


def test_the_cronjob_runs_a_trainer_command_that_parses() -> None:
    cron = find("CronJob", "recsvc-train")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] >= 0 and job["activeDeadlineSeconds"] > 0
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    command = trainer_command()
    assert command[:4] == ["exec", "python", "-m", "training"]
    args = trainer_parser().parse_args(command[4:])
    # A retry after a trainer killed mid-publish outwaits the lock it left.
    assert args.wait_lock * 1000 > LOCK_TTL_MS
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(Path(args.purchases).parent) in mounts
    # The purchases arrive by the init container's download, into the pod's own volume.
    (fetch,) = pod["initContainers"]
    assert str(Path(args.purchases).parent) in {m["mountPath"] for m in fetch["volumeMounts"]}
    assert all("persistentVolumeClaim" not in v for v in pod["volumes"])


def spark_docs() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted((ROOT / "k8s" / "spark").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def test_the_spark_retrains_run_a_trainer_command_that_parses() -> None:
    spark = spark_docs()
    account = spark["ServiceAccount/recsvc-spark"]["metadata"]["name"]
    assert spark["RoleBinding/recsvc-spark"]["subjects"][0]["name"] == account
    # Without the operator: spark-submit in client mode, the trainer's exit codes the job's.
    cron = spark["CronJob/recsvc-train-spark"]
    job = cron["spec"]["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["serviceAccountName"] == account
    command = container["command"]
    assert command[0] == "spark-submit" and "client" in command
    script = next(i for i, a in enumerate(command) if a.endswith("training/__main__.py"))
    args = trainer_parser().parse_args(command[script + 1 :])
    assert args.engine == "spark" and args.spark_master is None  # spark-submit's master
    assert args.wait_lock * 1000 > LOCK_TTL_MS
    assert job["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [2, 5, 6]
    # With the operator: the same trainer command, scheduled.
    app = spark["ScheduledSparkApplication/recsvc-train"]["spec"]["template"]
    assert app["mainApplicationFile"].endswith("/training/__main__.py")
    scheduled = trainer_parser().parse_args(app["arguments"])
    assert scheduled.engine == "spark" and scheduled.wait_lock * 1000 > LOCK_TTL_MS
    assert app["driver"]["serviceAccount"] == account
    # Both use the image with Java and pyspark, which the Dockerfile builds as a target.
    assert re.search(r"^FROM \S+ AS spark$", (ROOT / "Dockerfile").read_text(), re.M)
    assert container["image"] == app["image"]


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
    args = trainer_command()
    flag = args[args.index("--memory-budget") + 1] if "--memory-budget" in args else None
    budget = memory.parse_size(flag or configured or memory.DEFAULT_BUDGET)
    assert budget <= limit * 7 // 8, (budget, limit)
    # And the default alone fits too, for a CronJob that drops the ConfigMap entry.
    assert memory.parse_size(memory.DEFAULT_BUDGET) <= limit * 7 // 8


def build(overlay: str, tmp_path: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` of an overlay, with a secrets.env as the README writes it."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs kubectl (kustomize) to build the overlays")
        pytest.skip("needs kubectl to build the kustomize overlays, as CI has")
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns("secrets.env"))
    (tree / "overlays" / overlay / "secrets.env").write_text(
        "".join(f"{key}=value-of-{key.lower()}-0123456789\n" for key in sorted(SECRET_KEYS))
    )
    out = subprocess.run(
        [kubectl, "kustomize", str(tree / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def pod_specs(built: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    specs = {}
    for d in built:
        spec = d.get("spec", {})
        if d["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if "template" in spec:
            specs[d["metadata"]["name"]] = spec["template"]["spec"]
    return specs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_builds_into_what_deploys_as_shipped(overlay: str, tmp_path: Path) -> None:
    built = build(overlay, tmp_path)
    kustomization = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    ours = f"{image['newName']}:{image['newTag']}"
    specs = pod_specs(built)
    for name in ("recsvc", "recsvc-train"):
        (container,) = specs[name]["containers"]
        assert container["image"] == ours, (name, container["image"])
    # One Secret, generated from secrets.env, and every reference points at it.
    (secret,) = [d for d in built if d["kind"] == "Secret"]
    assert set(secret["data"]) == SECRET_KEYS
    text = yaml.safe_dump_all(built)
    refs = set(re.findall(r"secretKeyRef:\s+key: \w+\s+name: (\S+)", text))
    refs |= set(re.findall(r"secretRef:\s+name: (\S+)", text))
    assert refs == {secret["metadata"]["name"]}
    # Redis needs its password, and only recsvc's pods may reach it.
    (redis_container,) = specs["redis"]["containers"]
    assert "--requirepass" in redis_container["args"]
    (policy,) = [d for d in built if d["kind"] == "NetworkPolicy"]
    assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "redis"}
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "recsvc"}}}]
    for spec in (specs["recsvc"], specs["recsvc-train"]):
        assert spec["containers"][0]["envFrom"][0] == {"configMapRef": {"name": "recsvc"}}
    # No storage another pod must share.
    claims = [d for d in built if d["kind"] == "PersistentVolumeClaim"]
    assert not claims
    assert all(d["metadata"].get("namespace") in (None, "recsvc") for d in built)
