"""deploy/k8s: valid for Kubernetes (the real kubernetes-validate), and consistent with fender.

The probes, ports, memory and grace period are held to the settings the ConfigMap gives
fender, and the probe paths to the endpoint table fender really serves.
"""

from __future__ import annotations

import importlib
import inspect
import secrets
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from fender.settings import (
    ProductionRuleError,
    Settings,
    endpoint_paths,
    load_settings,
    secret_weakness,
)

from deployfiles import (
    DEPLOY,
    READ_DIRECTLY,
    k8s_bytes,
    load_yaml,
    run_tool,
    tool,
    unknown_env,
)

K8S = DEPLOY / "k8s"
# A release kubernetes-validate ships schemas for, old enough for most clusters in service.
KUBERNETES_VERSION = "1.30.0"
# What the startup probe must allow before liveness takes over: gunicorn booting its workers
# and the store opening both nodes takes about 5 s on a laptop; a cold node pulling
# caches, several times that.
STARTUP_BUDGET_SECONDS = 30
# Between the end of gunicorn's graceful timeout and the kubelet's SIGKILL.
GRACE_MARGIN_SECONDS = 1
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def manifests() -> list[Path]:
    return sorted(K8S.glob("*.yaml"))


@pytest.fixture(scope="module")
def docs() -> dict[str, dict[str, Any]]:
    """Each manifest by kind (one of each here)."""
    by_kind: dict[str, dict[str, Any]] = {}
    for path in manifests():
        doc = load_yaml(path)
        assert doc["kind"] not in by_kind, f"two {doc['kind']}s"
        by_kind[doc["kind"]] = doc
    return by_kind


@pytest.fixture(scope="module")
def pod(docs) -> dict[str, Any]:
    return docs["Deployment"]["spec"]["template"]


@pytest.fixture(scope="module")
def container(pod) -> dict[str, Any]:
    (only,) = pod["spec"]["containers"]
    return only


@pytest.fixture(scope="module")
def environment(docs) -> dict[str, str]:
    """What the pod's environment holds: the ConfigMap, then the Secret."""
    return {**docs["ConfigMap"]["data"], **docs["Secret"]["stringData"]}


@pytest.fixture(scope="module")
def settings(docs) -> Settings:
    """fender's settings in the pod, apart from the Secret (whose key is a placeholder)."""
    return load_settings(docs["ConfigMap"]["data"], env_file=None)


def test_the_expected_manifests_exist(docs):
    assert set(docs) == {"ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service"}
    assert (K8S / "secret.example.yaml").is_file()


@pytest.mark.parametrize("path", manifests(), ids=lambda path: path.name)
def test_kubernetes_validate_accepts(path):
    argv = [tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(path)]
    result = run_tool(argv)
    assert result.returncode == 0, result.stdout
    assert "passed" in result.stdout


def test_kubernetes_validate_rejects_a_misspelt_field(tmp_path):
    broken = tmp_path / "deployment.yaml"
    text = (K8S / "deployment.yaml").read_text()
    broken.write_text(text.replace("containerPort:", "containerport:"))
    argv = [tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(broken)]
    result = run_tool(argv)
    assert result.returncode != 0, result.stdout


def test_probes_use_fender_endpoints(container, settings):
    served = endpoint_paths(settings)
    probes = {kind: container[kind]["httpGet"]["path"] for kind in PROBES}
    for kind, path in probes.items():
        assert path in served, f"{kind} probes {path}, which fender does not serve"
    live, ready = settings.health_prefix + "/live", settings.health_prefix + "/ready"
    assert probes == {"livenessProbe": live, "readinessProbe": ready, "startupProbe": live}


def test_the_startup_probe_covers_startup_and_readiness_outwaits_the_checks(container, settings):
    startup = container["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] >= STARTUP_BUDGET_SECONDS
    # The readiness answer comes within FENDER_HEALTH_DEADLINE (checks that overrun are
    # failures): a probe timeout any shorter would turn a slow check into a missed probe.
    for kind in PROBES:
        assert container[kind]["timeoutSeconds"] >= 1
    assert container["readinessProbe"]["timeoutSeconds"] > settings.health_deadline


def test_the_grace_period_covers_the_drain_and_gunicorns_graceful_stop(pod, settings):
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert grace >= settings.drain_seconds + settings.graceful_timeout + GRACE_MARGIN_SECONDS
    assert (settings.drain_seconds, settings.graceful_timeout, grace) == (10, 30, 45)


def test_pre_stop_drains(container):
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["fender", "drain"]


def test_memory_is_512mi_and_fender_is_told_so(container, settings):
    resources = container["resources"]
    limit = k8s_bytes(resources["limits"]["memory"])
    assert limit == 512 * 2**20
    # Requested as much as the limit: the scheduler never places the pod where it cannot grow.
    assert k8s_bytes(resources["requests"]["memory"]) == limit
    assert settings.memory_limit_mb * 2**20 == limit
    assert settings.memory_limit_mb // settings.worker_memory_mb == 4


def test_ports_agree_between_deployment_service_and_probes(docs, container, settings):
    (port,) = container["ports"]
    assert port["containerPort"] == settings.port == 8000
    by_name = {port["name"]: port["containerPort"]}

    def resolve(value: str | int) -> int:
        return by_name[value] if isinstance(value, str) else value

    for kind in PROBES:
        assert resolve(container[kind]["httpGet"]["port"]) == settings.port, kind
    (service_port,) = docs["Service"]["spec"]["ports"]
    assert resolve(service_port["targetPort"]) == settings.port


def test_selectors_match_the_pods(docs, pod):
    labels = pod["metadata"]["labels"]
    deployment = docs["Deployment"]["spec"]
    for selector in (
        deployment["selector"]["matchLabels"],
        docs["Service"]["spec"]["selector"],
        docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()
    assert deployment["replicas"] == 2
    # The budget lets a node drain evict one pod at a time, never every one.
    assert 0 < docs["PodDisruptionBudget"]["spec"]["minAvailable"] < deployment["replicas"]


def test_the_environment_comes_from_the_configmap_and_secret(docs, container):
    sources = container["envFrom"]
    assert {"configMapRef": {"name": docs["ConfigMap"]["metadata"]["name"]}} in sources
    assert {"secretRef": {"name": docs["Secret"]["metadata"]["name"]}} in sources


def test_every_variable_is_a_setting(container, environment):
    names = [*environment, *(var["name"] for var in container.get("env", []))]
    assert unknown_env(names) == []
    assert unknown_env(["FENDER_DRAIN_SECOND"]) == ["FENDER_DRAIN_SECOND"]


def test_variables_read_outside_the_settings_are_read_by_fender():
    for name, modules in READ_DIRECTLY.items():
        for module in modules:
            assert f'"{name}"' in inspect.getsource(importlib.import_module(module)), module


def test_the_store_settings_are_valid(docs, settings, monkeypatch):
    from examples.kvstore.settings import load_kv_settings

    data = docs["ConfigMap"]["data"]
    for name in ("KV_MODE", "KV_LOCAL_URL", "KV_PEER_URL"):
        monkeypatch.setenv(name, data[name])
    kv = load_kv_settings()
    assert kv.local_url != kv.peer_url
    assert settings.is_production


def test_the_example_secret_is_refused_in_production(docs):
    secret = docs["Secret"]["stringData"]
    assert secret_weakness(secret["SECRET_KEY"])
    env = {**docs["ConfigMap"]["data"], **secret, "FENDER_TESTING": "0"}
    with pytest.raises(ProductionRuleError, match="SECRET_KEY"):
        load_settings(env, env_file=None).require_production_ready()


def test_the_example_admin_token_is_refused_in_production(docs):
    # A placeholder: a strong key beside it, and the pods still will not start.
    secret = {**docs["Secret"]["stringData"], "SECRET_KEY": secrets.token_urlsafe(48)}
    assert "FENDER_ADMIN_TOKEN" in secret
    env = {**docs["ConfigMap"]["data"], **secret, "FENDER_TESTING": "0"}
    with pytest.raises(ProductionRuleError, match="FENDER_ADMIN_TOKEN"):
        load_settings(env, env_file=None).require_production_ready()


def test_the_container_is_locked_down(pod, container):
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["automountServiceAccountToken"] is False
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]


def test_every_directory_fender_writes_is_a_writable_volume(pod, container, settings, docs):
    empty_dirs = {v["name"] for v in pod["spec"]["volumes"] if "emptyDir" in v}
    mounts = [
        PurePosixPath(m["mountPath"])
        for m in container["volumeMounts"]
        if m["name"] in empty_dirs and not m.get("readOnly", False)
    ]
    written = [
        PurePosixPath(settings.runtime_dir),
        PurePosixPath(docs["ConfigMap"]["data"]["PROMETHEUS_MULTIPROC_DIR"]),
        PurePosixPath("/tmp"),
    ]
    for directory in written:
        assert any(directory.is_relative_to(mount) for mount in mounts), directory
    # fender creates its directories 0700 and refuses a world-writable one: an emptyDir's
    # mount point is world-writable, so each directory must be below it, not the mount itself.
    for directory in written[:2]:
        assert directory not in mounts, directory
