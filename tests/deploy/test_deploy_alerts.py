"""deploy/prometheus and deploy/grafana, checked without a running service.

promtool (the real one, as a subprocess) validates the config and the rules and runs the rules'
unit tests; the rest reads the files: every alert is documented, linked to its runbook section
and unit-tested, and the dashboard is well formed. The live counterpart, every query against a
running store, is tests/e2e/test_deploy_dashboard_e2e.py.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from fender.settings import endpoint_paths, load_settings
from monitoring_files import (
    ALERTS,
    ALERTS_TEST,
    DASHBOARD,
    PROMETHEUS_CONFIG,
    ROOT,
    RUNBOOK,
    alert_rules,
    alert_unit_tests,
    dashboard,
    markdown_anchors,
    query_panels,
    split_alert,
)

from servers import missing

GRAFANA = ROOT / "deploy" / "grafana" / "provisioning"
COMPOSE = ROOT / "deploy" / "compose.yaml"
RUNBOOK_PREFIX = "docs/runbook.md#"
ALERT_NAMES = [rule["alert"] for rule in alert_rules()]
# fender's pages that answer 404 in production without the bearer token (src/fender/http/admin.py
# guards them; FENDER_ADMIN_TOKEN's description lists them).
ADMIN_PATHS = ("/status", "/health/detailed", "/health/drain")
BEARER = '-H "Authorization: Bearer $FENDER_ADMIN_TOKEN"'
# The store's own routes (examples/kvstore/app.py) besides fender's endpoints.
STORE_PATHS = ("/", "/openapi.json", "/circuit-breaker")
# What the runbook may run with `docker compose exec` in the store's image besides fender's
# console scripts (python:*-slim ships python and Debian's tar), and in the Redis image.
STORE_PROGRAMS = {"python", "tar"}
REDIS_PROGRAMS = {"redis-cli"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        missing("promtool (Debian package prometheus)")
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )  # type: ignore[list-item]


def test_promtool_checks_the_rules() -> None:
    done = promtool("check", "rules", str(ALERTS.relative_to(ROOT)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERT_NAMES)} rules found" in done.stdout


def test_promtool_unit_tests_pass() -> None:
    done = promtool("test", "rules", str(ALERTS_TEST.relative_to(ROOT)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_checks_the_config() -> None:
    # As shipped: the compose targets are names, which promtool does not resolve.
    done = promtool("check", "config", str(PROMETHEUS_CONFIG.relative_to(ROOT)))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_config_scrapes_both_stores_and_loads_the_alerts() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = config["scrape_configs"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job.get("scrape_interval", config["global"]["scrape_interval"]) == "15s"
    targets = [target for static in job["static_configs"] for target in static["targets"]]
    assert sorted(targets) == ["kv-ap:8000", "kv-cp:8000"]


@pytest.mark.parametrize("rule", alert_rules(), ids=ALERT_NAMES)
def test_each_alert_is_documented_and_linked_to_its_runbook(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning"}
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    url = annotations["runbook_url"]
    assert url.startswith(RUNBOOK_PREFIX), url
    assert url.removeprefix(RUNBOOK_PREFIX) in markdown_anchors(RUNBOOK.read_text())


@pytest.mark.parametrize("rule", alert_rules(), ids=ALERT_NAMES)
def test_each_alert_splits_into_signal_comparison_threshold(rule: dict[str, Any]) -> None:
    signal, op, _ = split_alert(rule["expr"])
    assert signal
    assert op


@pytest.mark.parametrize(
    "expr",
    [
        "a and on (job) b > 0",  # `and` binds looser: the comparison is b's, not the top's
        "a > bool 1",
        "(a > 1",
        "a > b",
        "a > 1 or b",
    ],
)
def test_the_split_refuses_what_is_not_the_convention(expr: str) -> None:
    with pytest.raises(ValueError):
        split_alert(expr)


@pytest.mark.parametrize("name", ALERT_NAMES)
def test_each_alert_has_unit_tests_that_it_fires_and_when_not(name: str) -> None:
    cases = alert_unit_tests().get(name, [])
    assert any(case["exp_alerts"] for case in cases), f"{name}: no case where it fires"
    assert any(not case.get("exp_alerts") for case in cases), f"{name}: no case where it stays"


def test_the_unit_tests_name_only_existing_alerts() -> None:
    assert set(alert_unit_tests()) <= set(ALERT_NAMES)


def test_the_dashboard_is_well_formed() -> None:
    board = dashboard()
    assert board["uid"]
    assert board["title"]
    assert board["schemaVersion"] >= 39  # Grafana 11
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"]["uid"] == "${datasource}"
    ids = [panel["id"] for panel in board["panels"]] + [
        inner["id"] for panel in board["panels"] for inner in panel.get("panels", [])
    ]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(grid), panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


@pytest.mark.parametrize("panel", query_panels(dashboard()), ids=lambda panel: panel["title"])
def test_each_panel_queries_the_chosen_source_job_and_instances(panel: dict[str, Any]) -> None:
    assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert panel["targets"], "a panel without a query"
    ref_ids = [target["refId"] for target in panel["targets"]]
    assert len(ref_ids) == len(set(ref_ids))
    for target in panel["targets"]:
        assert target["datasource"] == panel["datasource"]
        assert 'job=~"$job"' in target["expr"], target["expr"]
        assert 'instance=~"$instance"' in target["expr"], target["expr"]


def test_the_panels_do_not_overlap() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        grid = panel["gridPos"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine


def test_grafana_provisioning_points_at_prometheus_and_the_dashboard() -> None:
    (source,) = yaml.safe_load((GRAFANA / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    # The logs profile's Loki, as a second source: never the default.
    (logs,) = yaml.safe_load((GRAFANA / "datasources" / "loki.yml").read_text())["datasources"]
    assert logs["type"] == "loki"
    assert logs["url"] == "http://loki:3100"
    assert not logs.get("isDefault", False)
    assert source["isDefault"] is True
    (provider,) = yaml.safe_load((GRAFANA / "dashboards" / "fender.yml").read_text())["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")
    assert DASHBOARD.name == "fender.json"


def runbook_commands() -> list[str]:
    """The shell commands of the runbook: console blocks (continuations joined), inline code."""
    text = RUNBOOK.read_text()
    commands: list[str] = []
    for block in re.findall(r"```console\n(.*?)```", text, re.DOTALL):
        commands += [line.strip() for line in block.replace("\\\n", " ").splitlines()]
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    commands += re.findall(r"`((?:curl|docker|kubectl|fender|python|redis-cli) [^`]+)`", prose)
    return [command for command in commands if command]


def test_the_runbook_curls_published_ports_and_sends_the_admin_token() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    published: dict[int, str] = {}
    for name, service in services.items():
        for port in service.get("ports", []):
            _host_ip, host_port, _target = str(port).split(":")
            published[int(host_port)] = name
    fender = endpoint_paths(load_settings({}, env_file=None))
    admin_curls = 0
    curls = [c for c in runbook_commands() for part in c.split("|") if part.split()[:1] == ["curl"]]
    assert curls
    for command in curls:
        for url in re.findall(r"https?://[^\s'\"|]+", command):
            where = urlsplit(url)
            assert where.hostname == "127.0.0.1", f"{command}: not what compose publishes"
            assert where.port in published, f"{command}: compose publishes no port {where.port}"
            if "build" not in services[published[where.port]]:
                continue
            path = where.path
            assert path in fender or path in STORE_PATHS or path.startswith("/kv/"), command
            if path in ADMIN_PATHS:
                admin_curls += 1
                assert BEARER in command, f"{command}: 404 without the admin token"
    assert admin_curls


def test_the_runbook_runs_programs_the_containers_have() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    scripts = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])
    execs = 0
    for command in runbook_commands():
        for part in command.split("|"):
            words = shlex.split(part)
            # The Redis nodes publish no port: the host reaches them only through a container.
            assert words[0] != "redis-cli", f"{command}: run it in a Redis container"
            if words[:2] != ["docker", "compose"] or "exec" not in words:
                continue
            rest = words[words.index("exec") + 1 :]
            while rest[0].startswith("-"):
                rest = rest[1:]
            service, program = rest[0], rest[1]
            assert service in services, f"{command}: no service {service}"
            image = services[service].get("image", "")
            if "build" in services[service]:
                assert program in scripts | STORE_PROGRAMS, f"{command}: not in the store's image"
            elif image.startswith("redis:"):
                assert program in REDIS_PROGRAMS, f"{command}: not in {image}"
            else:
                pytest.fail(f"{command}: teach this test what {image} ships")
            execs += 1
    assert execs
