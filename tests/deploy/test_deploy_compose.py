"""deploy/compose.yaml: valid against the Compose Specification, and right where no schema looks.

The schema check runs the real check-jsonschema over the schema kept beside these tests; the
rest reads the file as compose would (YAML merge keys, ``${VAR:-default}``) and holds it to the
image, the repository and fender's own settings and logs.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import tomllib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from examples.kvstore.settings import load_kv_settings
from fender._deploy._compose import interpolate
from fender.observability._metrics import auto_dir
from fender.runtime._drain import runtime_directory
from fender.settings import ProductionRuleError, load_settings, secret_weakness

from deployfiles import (
    DEPLOY,
    REPO,
    compose_bytes,
    image_env,
    load_yaml,
    run_tool,
    tool,
    unknown_env,
)
from servers import CommandServer, free_port, wait_for

COMPOSE = DEPLOY / "compose.yaml"
# schema/compose-spec.json from github.com/compose-spec/compose-spec at commit
# 170098ba07d9f53c383a41bfd4c5166b0a4529a6 (2026-06-23); the file itself last changed in
# a08f8d51631b7127ddac3d2c65537db429d0f1d0 (2025-10-28). Kept here: the tests run offline.
SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"

STORES = ("kv-cp", "kv-ap")
STORE_PORT = 8000
# What the stores need exported to start (compose refuses without either).
EXPORTED = {
    "POSTGRES_PASSWORD": "pw-from-the-shell",
    "FENDER_ADMIN_TOKEN": secrets.token_urlsafe(32),
}

# The binaries each pinned third-party image is known to ship, from the images' Dockerfiles:
# a healthcheck may only run one of these. Change a tag, check its image, then this table.
IMAGE_BINARIES = {
    # Debian-based official images.
    "redis:7.4.2": {"redis-server", "redis-cli"},
    "postgres:16.6": {"postgres", "pg_isready", "psql"},
    # FROM quay.io/prometheus/busybox: busybox's applets (wget, no curl) beside its own two.
    "prom/prometheus:v2.55.1": {"prometheus", "promtool", "wget", "sh"},
    # Its Dockerfile installs curl (apk on Alpine, apt on Ubuntu); Alpine's busybox has wget.
    "grafana/grafana:11.4.0": {"grafana", "grafana-cli", "curl", "wget", "sh"},
    # Distroless (3.x): the binary alone can be relied on; so no healthcheck.
    "grafana/loki:3.3.2": {"loki"},
    # Debian slim with the binary: no wget, no curl; so no healthcheck.
    "grafana/promtail:3.3.2": {"promtail"},
}
# Host paths a service may mount besides the repository's files.
HOST_PATHS = {"/var/run/docker.sock"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


@pytest.fixture(scope="module")
def services(compose) -> dict[str, Any]:
    return compose["services"]


def store_env(service: dict[str, Any], environ: dict[str, str] | None = None) -> dict[str, str]:
    """The store's environment as compose hands it over, with ``environ`` exported."""
    exported = EXPORTED if environ is None else environ
    return {k: interpolate(str(v), exported) for k, v in service["environment"].items()}


def healthcheck_binary(test: list[str] | str) -> str:
    """The program a healthcheck runs: ``[CMD, prog, ...]``, or a shell line's first word."""
    if isinstance(test, str):
        return test.split()[0]
    kind, *rest = test
    if kind == "CMD-SHELL":
        return rest[0].split()[0]
    assert kind == "CMD", f"a healthcheck test is CMD or CMD-SHELL, not {kind}"
    return rest[0]


def volume_sources(service: dict[str, Any]) -> Iterator[str]:
    for volume in service.get("volumes", []):
        yield volume["source"] if isinstance(volume, dict) else volume.split(":")[0]


def writable_mounts(service: dict[str, Any]) -> list[PurePosixPath]:
    """Where a container with a read-only root may write: its tmpfs and its writable volumes."""
    tmpfs = service.get("tmpfs", [])
    paths = [entry.split(":")[0] for entry in ([tmpfs] if isinstance(tmpfs, str) else tmpfs)]
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if not volume.get("read_only", False):
                paths.append(volume["target"])
            continue
        _source, target, *mode = volume.split(":")
        if "ro" not in ",".join(mode).split(","):
            paths.append(target)
    return [PurePosixPath(path) for path in paths]


def published(service: dict[str, Any]) -> Iterator[tuple[str, int, int]]:
    """(host ip, host port, container port) of each published port."""
    for port in service.get("ports", []):
        if isinstance(port, dict):
            yield port.get("host_ip", ""), int(port["published"]), int(port["target"])
            continue
        parts = str(port).split(":")
        assert len(parts) == 3, f"{port}: publish as HOST_IP:HOST_PORT:CONTAINER_PORT"
        yield parts[0], int(parts[1]), int(parts[2])


def test_compose_matches_the_compose_specification():
    result = run_tool([tool("check-jsonschema"), "--schemafile", str(SCHEMA), str(COMPOSE)])
    assert result.returncode == 0, result.stdout
    assert "ok -- validation done" in result.stdout


def test_the_schema_check_rejects_what_compose_rejects(tmp_path):
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("    restart: unless-stopped", "    restrat: no"))
    result = run_tool([tool("check-jsonschema"), "--schemafile", str(SCHEMA), str(broken)])
    assert result.returncode == 1, result.stdout
    assert "restrat" in result.stdout


def test_no_version_key_and_the_agreed_services(compose, services):
    # `version` is obsolete in the Compose Specification: compose warns and ignores it.
    assert "version" not in compose
    expected = {*STORES, "redis-a", "redis-b", "postgres", "prometheus", "grafana"}
    assert expected <= set(services)
    assert {name for name, s in services.items() if "logs" in s.get("profiles", [])} == {
        "loki",
        "promtail",
    }


def test_every_healthcheck_runs_a_binary_its_image_ships(services):
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    scripts = set(pyproject["project"]["scripts"])
    dockerfile = REPO / "deploy" / "Dockerfile"
    for name, service in services.items():
        check = service.get("healthcheck")
        if "build" in service:
            # Our image: deploy/Dockerfile installs this project, whose console scripts it has.
            assert check is not None, f"{name}: the store needs a healthcheck"
            assert dockerfile.is_file(), "deploy/Dockerfile (the store's image) is missing"
            assert re.search(r"\b(pip|uv)\b[^\n]*\b(install|sync)\b", dockerfile.read_text())
            assert healthcheck_binary(check["test"]) in scripts, name
            continue
        assert service["image"] in IMAGE_BINARIES, f"{name}: add {service['image']} to the table"
        if check is not None:
            binary = healthcheck_binary(check["test"])
            assert binary in IMAGE_BINARIES[service["image"]], f"{name}: {binary}"


def test_the_stores_probe_their_readiness_with_fender(services):
    for name in STORES:
        test = services[name]["healthcheck"]["test"]
        assert test == ["CMD", "fender", "probe", f"http://127.0.0.1:{STORE_PORT}/health/ready"]
        assert store_env(services[name])["FENDER_PORT"] == str(STORE_PORT)


def test_published_ports_are_loopback_only_and_never_collide(services):
    seen: dict[int, str] = {}
    for name, service in services.items():
        for host_ip, host_port, _target in published(service):
            assert host_ip == "127.0.0.1", f"{name} publishes on {host_ip or 'every address'}"
            assert host_port not in seen, f"{name} and {seen.get(host_port)} both take {host_port}"
            seen[host_port] = name
    for name in STORES:
        assert [target for *_, target in published(services[name])] == [STORE_PORT]


def test_every_mounted_file_and_build_input_exists(services, compose):
    named = set(compose.get("volumes", {}))
    for name, service in services.items():
        for source in volume_sources(service):
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}: not in deploy/"
            elif source.startswith("/"):
                assert source in HOST_PATHS, f"{name} mounts the host's {source}"
            else:
                assert source in named, f"{name}: volume {source} is not declared"
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert context == REPO
            assert (context / service["build"]["dockerfile"]).is_file()


def test_depends_on_targets_exist_and_healthy_waits_have_a_healthcheck(services):
    for name, service in services.items():
        for target, condition in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on {target}, which is not a service"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target}'s health"
            profiles = set(services[target].get("profiles", []))
            assert profiles <= set(service.get("profiles", [])), f"{name} needs {target}"
    for name in STORES:
        waits = services[name]["depends_on"]
        assert {t: c["condition"] for t, c in waits.items()} == dict.fromkeys(
            ("redis-a", "redis-b", "postgres"), "service_healthy"
        )


def test_the_store_memory_limit_is_512m_and_fender_is_told_so(services):
    for name in STORES:
        limit = compose_bytes(services[name]["deploy"]["resources"]["limits"]["memory"])
        assert limit == 512 * 2**20
        settings = load_settings(store_env(services[name]), env_file=None)
        assert settings.memory_limit_mb * 2**20 == limit
        # At most 4 workers of FENDER_WORKER_MEMORY_MB fit (docs and alerts assume it).
        assert settings.memory_limit_mb // settings.worker_memory_mb == 4
    for name, service in services.items():
        assert service["deploy"]["resources"]["limits"]["memory"], f"{name} has no limit"


def test_a_read_only_store_writes_only_under_its_mounts(services):
    # `fender drain` and POST /health/drain write the drain flag into FENDER_RUNTIME_DIR; the
    # workers, their metrics into PROMETHEUS_MULTIPROC_DIR (else one under /tmp). On a
    # read-only root filesystem each must be under a tmpfs or a writable volume.
    read_only = {name: s for name, s in services.items() if s.get("read_only")}
    assert set(STORES) <= set(read_only)
    for name, service in read_only.items():
        env = {**(image_env() if "build" in service else {}), **store_env(service)}
        runtime = PurePosixPath(runtime_directory(load_settings(env, env_file=None)))
        metrics = PurePosixPath(env.get("PROMETHEUS_MULTIPROC_DIR") or auto_dir(1))
        mounts = writable_mounts(service)
        for what, directory in (("FENDER_RUNTIME_DIR", runtime), ("metrics", metrics)):
            assert any(directory.is_relative_to(mount) for mount in mounts), (name, what, mounts)
            # fender creates its directories 0700 and refuses a world-writable one: a tmpfs
            # mount point is (1777), so the directory must be below it, not the mount itself.
            assert directory not in mounts, (name, what)


def test_every_store_variable_is_a_setting(services):
    for name in STORES:
        assert unknown_env(services[name]["environment"]) == [], name


def test_a_misspelt_variable_is_caught():
    assert unknown_env(["FENDER_DRAIN_SECOND", "KV_MOD", "KV_MODE"]) == [
        "FENDER_DRAIN_SECOND",
        "KV_MOD",
    ]


def test_the_store_settings_load(services, monkeypatch):
    # Every value is one fender and the store accept (a bad one fails the app at start-up).
    key = secrets.token_urlsafe(48)
    for name in STORES:
        env = store_env(services[name], {**EXPORTED, "SECRET_KEY": key})
        settings = load_settings(env, env_file=None)
        settings.require_production_ready()
        assert settings.is_production
        assert settings.secret_key is not None
        assert settings.secret_key.get_secret_value() == key
        for variable in ("KV_MODE", "KV_LOCAL_URL", "KV_PEER_URL"):
            monkeypatch.setenv(variable, env[variable])
        assert load_kv_settings().mode == name.removeprefix("kv-")


def test_no_working_secret_ships(services):
    for name in STORES:
        env = store_env(services[name])
        assert secret_weakness(env["SECRET_KEY"]), "the fallback SECRET_KEY would be accepted"
        settings = load_settings({**env, "FENDER_TESTING": "0"}, env_file=None)
        with pytest.raises(ProductionRuleError, match="SECRET_KEY"):
            settings.require_production_ready()
        for required in EXPORTED:
            others = {k: v for k, v in EXPORTED.items() if k != required}
            with pytest.raises(KeyError, match=required):
                store_env(services[name], others)
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(services["postgres"]["environment"]["POSTGRES_PASSWORD"], {})


def test_the_stores_see_each_others_nodes_and_every_host_is_a_service(services):
    cp, ap = (store_env(services[name]) for name in STORES)
    assert (cp["KV_LOCAL_URL"], cp["KV_PEER_URL"]) == (ap["KV_PEER_URL"], ap["KV_LOCAL_URL"])
    assert urlsplit(cp["KV_LOCAL_URL"]).hostname == "redis-a"
    for name in STORES:
        for variable, value in store_env(services[name]).items():
            host = urlsplit(value).hostname if "://" in value else None
            assert host is None or host in services, f"{name}: {variable} names {host}"


def test_the_mounted_observability_files_agree_with_compose(services):
    # deploy/prometheus and deploy/grafana are another helper's: these are the joints.
    prometheus = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    targets = {
        target
        for job in prometheus["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert {f"{name}:{STORE_PORT}" for name in STORES} <= targets
    mounted = {v.split(":")[1] for v in services["prometheus"]["volumes"] if v.startswith(".")}
    for rule_file in prometheus.get("rule_files", []):
        assert str(Path("/etc/prometheus", rule_file)) in mounted, rule_file
    dashboard = next(
        v.split(":")[1] for v in services["grafana"]["volumes"] if v.endswith("fender.json:ro")
    )
    providers = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "fender.yml")
    paths = [p["options"]["path"] for p in providers["providers"]]
    assert any(Path(dashboard).is_relative_to(path) for path in paths), (dashboard, paths)
    provisioned = sorted((DEPLOY / "grafana" / "provisioning" / "datasources").glob("*.yml"))
    assert len(provisioned) >= 2, provisioned  # Prometheus, and Loki for the logs profile
    for path in provisioned:
        for source in load_yaml(path)["datasources"]:
            url = urlsplit(source["url"])
            assert url.hostname in services, (path.name, source["url"])
            if url.hostname == "loki":
                loki = load_yaml(DEPLOY / "loki" / "config.yml")
                assert url.port == loki["server"]["http_listen_port"], source["url"]


@pytest.fixture(scope="module")
def compose_store(tmp_path_factory, services) -> Iterator[tuple[CommandServer, dict[str, str]]]:
    """The store served by ``fender run``, configured as in the image; and its environment.

    FENDER_RUNTIME_DIR is compose's, rooted in a directory standing for the container's /tmp
    tmpfs (world-writable and sticky, as a tmpfs mounts).
    """
    data = tmp_path_factory.mktemp("kv")
    port = free_port()
    compose_runtime = PurePosixPath(store_env(services["kv-ap"])["FENDER_RUNTIME_DIR"])
    tmpfs = data / "root" / "tmp"
    tmpfs.mkdir(parents=True)
    tmpfs.chmod(0o1777)
    env = {
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
        "FENDER_ENV": "production",
        "FENDER_TESTING": "0",
        "FENDER_HOST": "127.0.0.1",
        "FENDER_PORT": str(port),
        "FENDER_LOG_FORMAT": "json",
        "FENDER_RUNTIME_DIR": str(data / "root" / compose_runtime.relative_to("/")),
        "PROMETHEUS_MULTIPROC_DIR": str(data / "metrics"),
        "HOME": str(data),  # where gunicorn would open its control socket
        "SECRET_KEY": secrets.token_urlsafe(48),
        "FENDER_ADMIN_TOKEN": store_env(services["kv-ap"])["FENDER_ADMIN_TOKEN"],
        "WEB_WORKERS": "1",
        "KV_MODE": "ap",
        # SQLite nodes: the log line's keys do not depend on the node kind.
        "KV_LOCAL_URL": f"sqlite:///{data}/local.db",
        "KV_PEER_URL": f"sqlite:///{data}/peer.db",
    }
    argv = [tool("fender"), "run", "examples.kvstore.app:app"]
    server = CommandServer(argv, port=port, env=env, cwd=REPO)
    server.start()
    try:
        yield server, env
    finally:
        server.close()


@pytest.fixture(scope="module")
def access_log_line(compose_store) -> dict[str, Any]:
    """One access log line of the store (taken before any test drains it)."""
    server, _env = compose_store
    httpx.put(f"{server.url}/kv/greeting", json={"value": "hi"}, timeout=10)

    def logged() -> dict[str, Any] | None:
        for line in server.output().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") == "request" and record.get("route") == "/kv/{key}":
                    return record
        return None

    wait_for(lambda: logged() is not None, 30.0, "the store's access log line")
    record = logged()
    assert record is not None
    return record


@pytest.mark.e2e
def test_the_admin_pages_answer_the_compose_token(compose_store):
    # The runbook's commands: production hides them (404) from a request without the token.
    # (The store's own /circuit-breaker replaces fender's protected one and is public.)
    server, env = compose_store
    bearer = {"Authorization": f"Bearer {env['FENDER_ADMIN_TOKEN']}"}
    for path in ("/status", "/health/detailed"):
        assert httpx.get(f"{server.url}{path}", timeout=10).status_code == 404, path
        assert httpx.get(f"{server.url}{path}", headers=bearer, timeout=10).status_code == 200


@pytest.mark.e2e
def test_fender_drain_works_in_the_compose_runtime_dir(compose_store, access_log_line):
    # access_log_line first: once drained, the store stays unready until it restarts.
    server, env = compose_store
    assert httpx.get(f"{server.url}/health/ready", timeout=10).status_code == 200
    drained = subprocess.run(
        [tool("fender"), "drain", "--wait", "0"],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert drained.returncode == 0, drained.stdout + drained.stderr
    runtime = Path(env["FENDER_RUNTIME_DIR"])
    assert runtime.stat().st_mode & 0o777 == 0o700
    assert (runtime / "drain").is_file()
    wait_for(
        lambda: httpx.get(f"{server.url}/health/ready", timeout=10).status_code == 503,
        30.0,
        "readiness 503 after fender drain",
    )


@pytest.mark.e2e
def test_promtail_parses_the_keys_fender_logs(access_log_line):
    promtail = load_yaml(DEPLOY / "promtail" / "config.yml")
    (job,) = promtail["scrape_configs"]
    stages = {next(iter(stage)): next(iter(stage.values())) for stage in job["pipeline_stages"]}
    expressions = stages["json"]["expressions"]
    # Each expression a plain key of fender's line (no JMESPath path fender does not write).
    assert set(expressions.values()) <= set(access_log_line), sorted(access_log_line)
    for wanted in ("event", "level", "timestamp", "request_id", "route", "status", "duration_ms"):
        assert wanted in expressions
    extracted = set(expressions)
    assert set(stages["labels"]) <= extracted
    assert set(stages["structured_metadata"]) <= extracted
    # Low-cardinality labels only: a label per request would make a stream per request.
    assert not {"request_id", "route", "status", "duration_ms"} & set(stages["labels"])
    assert stages["timestamp"]["source"] in extracted
    assert stages["timestamp"]["format"] == "RFC3339Nano"
    datetime.fromisoformat(access_log_line["timestamp"])  # RFC 3339, as Promtail will read it


def test_promtail_keeps_the_stores_and_pushes_to_loki(services):
    promtail = load_yaml(DEPLOY / "promtail" / "config.yml")
    loki = load_yaml(DEPLOY / "loki" / "config.yml")
    (job,) = promtail["scrape_configs"]
    keep = next(r for r in job["relabel_configs"] if r.get("action") == "keep")
    assert all(re.fullmatch(keep["regex"], name) for name in STORES)
    assert not any(re.fullmatch(keep["regex"], name) for name in services if name not in STORES)
    (client,) = promtail["clients"]
    push = urlsplit(client["url"])
    assert push.hostname == "loki"
    assert push.port == loki["server"]["http_listen_port"]
    # Structured metadata needs Loki's tsdb v13 schema and the limit allowing it.
    assert loki["limits_config"]["allow_structured_metadata"] is True
    assert {c["schema"] for c in loki["schema_config"]["configs"]} == {"v13"}
    mounts = [v.split(":")[1] for v in services["promtail"]["volumes"]]
    assert promtail["positions"]["filename"].startswith(
        next(m for m in mounts if m.startswith("/var/lib/promtail"))
    )
