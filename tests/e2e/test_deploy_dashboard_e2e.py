"""deploy/'s Prometheus config, alerts and Grafana dashboard against the live store.

Two real redis-servers; the store as real `fender run` instances in AP and CP mode over them
(REDIS_URL set, so the rate limiter's Redis breaker exists; DATABASE_URL a SQLite file, so
fender's database health check runs through a pool and the db_client_* metrics are real: the
store itself never uses the pool); a real Prometheus running a copy of
deploy/prometheus/prometheus.yml with the test's ports as targets, scraping and evaluating every
second, with deploy/prometheus/alerts.yml loaded.

After real traffic (writes, reads, 404s, probe paths) and a real fault (redis-b, the peer node
and the rate limiter's Redis, frozen with SIGSTOP), every query of every dashboard panel and the
signal side of every alert return a series with a value, and the alerts that fault must raise
fire. The copy of alerts.yml shortens every `for:` to FOR_IN_TEST (the real ones, up to 5m, are
checked by promtool's unit tests in alerts_test.yml): the expressions are the real ones.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from monitoring_files import (
    ALERTS,
    PROMETHEUS_CONFIG,
    alert_rules,
    dashboard,
    query_panels,
    split_alert,
    substitute,
)

from kv_instances import kv_instance
from servers import (
    CommandServer,
    PrometheusServer,
    RedisServer,
    find_redis,
    missing,
    running_prometheus,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

FOR_IN_TEST = "1s"
DEADLINE = 60.0
JOB = "fender"
# What Grafana makes of $__rate_interval with the compose data source (4 x 15 s).
RATE_INTERVAL = "1m"
PROBE_PATHS = 80  # > 60: 0.2/s over the 5m window of FenderSecurityEventsSpike


@pytest.fixture
def redis_pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    binary = find_redis()
    if binary is None:
        missing("redis-server")
    servers = [RedisServer(binary), RedisServer(binary)]  # type: ignore[arg-type]
    try:
        for server in servers:
            server.start()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.close()


@pytest.fixture
def stores(
    tmp_path: Path, redis_pair: tuple[RedisServer, RedisServer]
) -> Iterator[dict[str, CommandServer]]:
    """kv-ap and kv-cp, over redis-a (local) and redis-b (peer, and the rate limiter's Redis).

    And kv-noredis: AP without REDIS_URL (its rate limits in memory by design), one worker.
    """
    redis_a, redis_b = redis_pair
    started: dict[str, CommandServer] = {}
    plans = (
        ("kv-ap", "ap", {"REDIS_URL": redis_b.url}),
        ("kv-cp", "cp", {"REDIS_URL": redis_b.url}),
        ("kv-noredis", "ap", {"WEB_WORKERS": "1"}),
    )
    try:
        for name, mode, extra in plans:
            started[name] = kv_instance(
                tmp_path,
                name,
                mode,
                redis_a.url,
                redis_b.url,
                DATABASE_URL=f"sqlite:///{tmp_path / name / 'app.db'}",
                # On, with limits no test traffic reaches: decisions are counted, none refused.
                FENDER_RATE_LIMIT_ENABLED="true",
                FENDER_RATE_LIMIT="100000/minute",
                # The checks' background refresh every second: three failures in a row in 3 s.
                FENDER_HEALTH_INTERVAL="1",
                **extra,
            )
        yield started
    finally:
        for server in started.values():
            server.terminate()
            server.close()


def render_rules(target: Path) -> Path:
    """alerts.yml with every `for:` shortened to FOR_IN_TEST (expressions untouched)."""
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = FOR_IN_TEST
    target.write_text(yaml.safe_dump(rules, sort_keys=False))
    return target


def render_config(tmp_path: Path, ports: dict[str, int]) -> Path:
    """deploy/prometheus/prometheus.yml with the compose targets replaced by the test's ports.

    (kv-cp, kv-ap, and the test's kv-noredis, in the same job.)
    """
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(render_rules(tmp_path / "alerts.yml"))]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == JOB
    job["scrape_interval"] = "1s"
    for static in job["static_configs"]:
        assert {target.removesuffix(":8000") for target in static["targets"]} <= set(ports)
        static["targets"] = [f"127.0.0.1:{port}" for port in ports.values()]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def prometheus(tmp_path: Path, stores: dict[str, CommandServer]) -> Iterator[PrometheusServer]:
    config = render_config(tmp_path, {name: server.port for name, server in stores.items()})
    with running_prometheus(config, tmp_path) as server:
        yield server


def api(prometheus: PrometheusServer, path: str) -> Any:
    response = httpx.get(f"{prometheus.url}/api/v1/{path}", timeout=10)
    response.raise_for_status()
    return response.json()["data"]


def valued(result: list[dict[str, Any]]) -> bool:
    """True when some series of an instant query has a number (NaN: no data in the window)."""
    return any(not math.isnan(float(series["value"][1])) for series in result)


def traffic(url: str, first: int, count: int) -> None:
    """Writes, reads of them, reads of missing keys (404): status codes are the store's."""
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(first, first + count):
            client.put(f"/kv/key{i}", json={"value": f"v{i}"})
            client.get(f"/kv/key{i}")
            client.get(f"/kv/missing{i}")


def probes(url: str) -> None:
    """Scanner-like requests: each is a `probe_path` security event."""
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(PROBE_PATHS):
            client.get(f"/.env.{i}" if i % 2 else f"/wp-admin/setup-{i}.php")


def wait_until(predicate: Callable[[], bool], what: str, stores: dict[str, CommandServer]) -> None:
    """wait_for, and on a timeout the instances' logs for the reason."""
    try:
        wait_for(predicate, DEADLINE, what)
    except TimeoutError:
        logs = "\n".join(f"--- {n}:\n{s.output()[-1500:]}" for n, s in stores.items())
        raise AssertionError(f"{what}: not within {DEADLINE}s\n{logs}") from None


def fire(
    prometheus: PrometheusServer,
    stores: dict[str, CommandServer],
    expected: set[tuple[str, str]],
) -> set[tuple[str, str]]:
    """Wait until every (alert, instance) of ``expected`` fires; return all that fire then."""
    firing: set[tuple[str, str]] = set()
    sent = itertools.count(1000)

    def all_expected_firing() -> bool:
        # Requests keep going meanwhile: the breakers and the rate limiter see the fault
        # through calls, and CP's error share needs requests to refuse.
        first = next(sent)
        for server in stores.values():
            traffic(server.url, first, 1)
        firing.clear()
        firing.update(
            (alert["labels"]["alertname"], alert["labels"]["instance"])
            for alert in api(prometheus, "alerts")["alerts"]
            if alert["state"] == "firing"
        )
        return expected <= firing

    try:
        wait_until(all_expected_firing, f"alerts {sorted(expected)} firing", stores)
    except AssertionError as exc:
        raise AssertionError(f"firing: {sorted(firing)}\n{exc}") from None
    return set(firing)


def assert_signals_answer(prometheus: PrometheusServer, stores: dict[str, CommandServer]) -> None:
    """The signal side of every alert returns a series with a value."""
    for rule in alert_rules():
        signal, _, _ = split_alert(rule["expr"])
        what = f"signal of {rule['alert']}: {signal}"
        wait_until(lambda s=signal: valued(prometheus.query(s)), what, stores)


def assert_panels_answer(
    prometheus: PrometheusServer, stores: dict[str, CommandServer], instances: list[str]
) -> None:
    """Every query of every panel, with the variables as Grafana fills them, returns a value."""
    variables = {"job": JOB, "instance": "|".join(instances), "__rate_interval": RATE_INTERVAL}
    for panel in query_panels(dashboard()):
        for target in panel["targets"]:
            query = substitute(target["expr"], variables)
            what = f"panel {panel['title']!r} query {target['refId']}: {query}"
            wait_until(lambda q=query: valued(prometheus.query(q)), what, stores)
    # The variables' own queries (label_values) list this job and the instances.
    assert JOB in api(prometheus, "label/job/values?match[]=fender_lifecycle_state")
    selector = f'fender_lifecycle_state{{job="{JOB}"}}'
    assert set(instances) <= set(api(prometheus, f"label/instance/values?match[]={selector}"))


def test_dashboard_and_alerts_on_the_live_store(
    stores: dict[str, CommandServer],
    prometheus: PrometheusServer,
    redis_pair: tuple[RedisServer, RedisServer],
) -> None:
    instance = {name: f"127.0.0.1:{server.port}" for name, server in stores.items()}
    wait_until(
        lambda: len(prometheus.query(f'up{{job="{JOB}"}} == 1')) == len(stores),
        "every target up",
        stores,
    )
    rules = api(prometheus, "rules")["groups"]
    broken = [
        (r["name"], r.get("lastError")) for g in rules for r in g["rules"] if r["health"] == "err"
    ]
    assert not broken, broken

    # Healthy traffic on every instance; probes on kv-ap.
    with concurrent.futures.ThreadPoolExecutor(len(stores) + 1) as pool:
        jobs = [pool.submit(traffic, server.url, 0, 10) for server in stores.values()]
        jobs.append(pool.submit(probes, stores["kv-ap"].url))
        for job in jobs:
            job.result()

    # The fault: redis-b (every instance's peer node, and the rate limiter's Redis of those
    # with REDIS_URL) hangs.
    expected = {
        ("FenderCircuitBreakerOpen", instance["kv-ap"]),
        ("FenderCircuitBreakerOpen", instance["kv-cp"]),
        ("FenderDataStale", instance["kv-ap"]),
        ("FenderRateLimitFallback", instance["kv-ap"]),
        ("FenderRateLimitFallback", instance["kv-cp"]),
        ("FenderHighErrorRate", instance["kv-cp"]),  # CP refuses writes: 503
        ("FenderSecurityEventsSpike", instance["kv-ap"]),
        ("FenderHealthCheckFailing", instance["kv-cp"]),  # kv_peer fails in CP
    }
    # None of them before the fault but the probes' (the memory alerts are left out: the
    # usage is the cgroup's, which on a test machine holds every other process too).
    before = {
        (alert["labels"]["alertname"], alert["labels"]["instance"])
        for alert in api(prometheus, "alerts")["alerts"]
    }
    assert not (before & expected) - {("FenderSecurityEventsSpike", instance["kv-ap"])}, before
    _, redis_b = redis_pair
    redis_b.pause()
    try:
        firing = fire(prometheus, stores, expected)
        # Without REDIS_URL the limiter decides in memory by design: no fallback alert.
        memory = f'rate_limit_backend{{backend="memory", instance="{instance["kv-noredis"]}"}} > 0'
        assert prometheus.query(memory), "kv-noredis does not decide in memory"
        assert ("FenderRateLimitFallback", instance["kv-noredis"]) not in firing
    finally:
        redis_b.resume()

    assert_signals_answer(prometheus, stores)
    assert_panels_answer(prometheus, stores, list(instance.values()))
