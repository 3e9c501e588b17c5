"""``fender doctor --deploy DIR``: the mistakes the seed services' deploy files made, each found."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fender._deploy import diagnose_deploy
from fender._deploy._judge import DOCKER_UNITS, K8S_UNITS, seconds, size_bytes
from fender._status import Status
from fender.cli import main

ROOT = Path(__file__).resolve().parents[1]

GOOD_POD = """
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec:
      template:
        spec:
          terminationGracePeriodSeconds: 45
          containers:
            - name: web
              image: example/web:1
              env: [{name: FENDER_DRAIN_SECONDS, value: "10"}]
              ports: [{containerPort: 8000, name: http}]
              livenessProbe: {httpGet: {path: /health/live, port: http}}
              readinessProbe: {httpGet: {path: /health/ready, port: 8000}}
              startupProbe: {httpGet: {path: /health/live, port: http}}
              lifecycle: {preStop: {exec: {command: ["fender", "drain"]}}}
              resources: {limits: {memory: 512Mi}}
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def findings(directory: Path, check: str | None = None) -> list[tuple[str, Status, str]]:
    report = diagnose_deploy(directory)
    return [
        (f.check, f.status, f.reason) for f in report.findings if check is None or f.check == check
    ]


def worst(directory: Path, check: str) -> Status:
    return Status.worst(status for _, status, _ in findings(directory, check))


def test_a_sound_deployment_passes_every_check(tmp_path):
    write(tmp_path, "k8s/web.yaml", GOOD_POD)
    got = findings(tmp_path)
    assert {status for _, status, _ in got} == {Status.PASS}, got
    assert {check for check, _, _ in got} >= {
        "deploy:liveness", "deploy:readiness", "deploy:startup", "deploy:prestop",
        "deploy:grace", "deploy:memory",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("change", "check", "status", "says"),
    [
        pytest.param(("/health/live", "/healthz"), "deploy:liveness", Status.FAIL,
                     "serves no such path", id="probe-path-not-served"),
        pytest.param(("/health/ready", "/health/readiness"), "deploy:readiness", Status.FAIL,
                     "serves no such path", id="typo-under-the-prefix"),
        pytest.param(("/health/ready", "/health/detailed"), "deploy:readiness", Status.FAIL,
                     "admin-only", id="protected-page"),
        pytest.param(("/health/ready", "/health/live"), "deploy:readiness", Status.FAIL,
                     "never turns 503 on drain", id="readiness-on-liveness"),
        pytest.param(("livenessProbe: {httpGet: {path: /health/live",
                      "livenessProbe: {httpGet: {path: /health"),
                     "deploy:liveness", Status.WARN, "restarts every pod",
                     id="liveness-checks-deps"),
        pytest.param(("/health/ready, port: 8000", "/health/ready, port: 8080"),
                     "deploy:readiness", Status.FAIL, "fender run binds 8000", id="probe-port"),
        pytest.param(("terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 30"),
                     "deploy:grace", Status.FAIL, "requests still running are killed",
                     id="grace-shorter-than-drain-plus-graceful"),
        pytest.param(("      terminationGracePeriodSeconds: 45\n", ""), "deploy:grace",
                     Status.FAIL, "30s is shorter", id="grace-default-30s"),
        pytest.param(('lifecycle: {preStop: {exec: {command: ["fender", "drain"]}}}',
                      "lifecycle: {}"), "deploy:prestop", Status.FAIL, "no preStop",
                     id="no-prestop"),
        pytest.param(('value: "10"}]', 'value: "10"}, {name: WEB_WORKERS, value: "8"}]'),
                     "deploy:memory", Status.FAIL, "1024 MiB is over 85% of the 512 MiB",
                     id="workers-over-memory"),
        pytest.param(('value: "10"}]', 'value: "10"}, {name: MEMORY_LIMIT_MB, value: "2048"}]'),
                     "deploy:memory", Status.FAIL, "over the container's 512 MiB",
                     id="memory-limit-mb-over-the-container"),
        pytest.param(("resources: {limits: {memory: 512Mi}}", "resources: {}"), "deploy:memory",
                     Status.WARN, "no memory limit", id="no-memory-limit"),
        pytest.param(('value: "10"}]', 'value: "10"}, {name: WEB_WORKERS, value: "zero"}]'),
                     "deploy:settings", Status.FAIL, "WEB_WORKERS", id="bad-setting"),
    ],
)  # fmt: skip
def test_each_seed_mistake_in_a_deployment_is_found(tmp_path, change, check, status, says):
    old, new = change
    assert old in textwrap.dedent(GOOD_POD)
    write(tmp_path, "web.yaml", textwrap.dedent(GOOD_POD).replace(old, new))
    got = findings(tmp_path, check)
    assert any(s is status and says in reason for _, s, reason in got), got


def test_the_container_environment_moves_the_paths_as_fender_will(tmp_path):
    moved = (
        textwrap.dedent(GOOD_POD)
        .replace('value: "10"}]', 'value: "10"}, {name: FENDER_HEALTH_PREFIX, value: /_h}]')
        .replace("/health/live", "/_h/live")
    )
    write(tmp_path, "web.yaml", moved)
    assert worst(tmp_path, "deploy:liveness") is Status.PASS
    assert worst(tmp_path, "deploy:readiness") is Status.FAIL  # still /health/ready


def test_config_maps_in_the_folder_feed_the_container_and_waits_come_from_the_hook(tmp_path):
    pod = (
        textwrap.dedent(GOOD_POD)
        .replace("env: [", "envFrom: [{configMapRef: {name: web-env}}]\n          env: [")
        .replace('["fender", "drain"]', '["fender", "drain", "--wait", "20"]')
    )
    write(tmp_path, "web.yaml", pod)
    config = """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: web-env}
        data: {WEB_WORKERS: "2", GUNICORN_GRACEFUL_TIMEOUT: "20"}
    """
    write(tmp_path, "config.yaml", config)
    got = findings(tmp_path)
    assert any("preStop waits 20s" in reason for _, _, reason in got), got
    assert any("covers drain 20s + graceful 20s" in reason for _, _, reason in got), got
    assert any("2 workers fit in 512 MiB" in reason for _, _, reason in got), got


COMPOSE = """
    services:
      web:
        build: {context: ., dockerfile: Dockerfile}
        environment:
          WEB_WORKERS: ${WEB_WORKERS:-8}
          SECRET_KEY: ${SECRET_KEY}
          DATABASE_URL: ${DATABASE_URL:?export it}  # unknown here: fender's default stands in
        healthcheck:
          test: ["CMD", "curl", "-f", "http://localhost:8000/healthz"]
        mem_limit: 512m
      redis:
        image: redis:7
        healthcheck: {test: ["CMD", "redis-cli", "ping"]}
      postgres:
        image: postgres:16
        environment: {POSTGRES_USER: fender, POSTGRES_DB: fender}
        healthcheck: {test: ["CMD", "pg_isready", "-U", "fender"]}
"""

DOCKERFILE = """
    FROM python:3.11 AS build
    RUN pip wheel . -w /dist
    FROM python:3.11-slim
    COPY --from=build /dist /dist
    RUN pip install /dist/*.whl
    HEALTHCHECK CMD curl -f http://localhost:8000/health/ready || exit 1
    CMD ["fender", "run", "app:app"]
"""


def test_compose_and_dockerfile_mistakes_are_found_for_the_fender_service_only(tmp_path):
    write(tmp_path, "compose.yaml", COMPOSE)
    write(tmp_path, "Dockerfile", DOCKERFILE)
    got = findings(tmp_path)
    said = "\n".join(f"{check} {status} {reason}" for check, status, reason in got)
    assert "redis" not in said  # not a fender service: not judged
    assert "postgres" not in said  # a database named fender is not fender
    grace = [r for c, s, r in got if c == "deploy:grace" and s is Status.FAIL]
    assert grace, said
    assert "stop_grace_period 10s" in grace[0], said  # docker stop's default
    assert any(c == "deploy:healthcheck" and "/healthz" in r for c, _, r in got), said
    assert any("8 workers x 128 MiB" in r for c, _, r in got if c == "deploy:memory"), said
    curl = [r for c, s, r in got if s is Status.FAIL and "runs curl" in r]
    assert curl, said
    assert any(c == "deploy:user" and s is Status.WARN for c, s, _ in got), said


def test_a_compose_service_that_does_it_right_passes(tmp_path):
    good = """
        services:
          web:
            command: ["fender", "run", "app:app"]
            environment: ["FENDER_PORT=8000"]
            healthcheck:
              test: ["CMD", "fender", "probe", "http://127.0.0.1:8000/health/ready"]
            stop_grace_period: 45s
            deploy: {resources: {limits: {memory: 512M}}}
    """
    write(tmp_path, "compose.yaml", good)
    got = findings(tmp_path)
    assert {s for _, s, _ in got} == {Status.PASS}, got


def test_procfile(tmp_path):
    write(tmp_path, "Procfile", "web: gunicorn app:app\n")
    assert worst(tmp_path, "deploy:procfile") is Status.WARN
    write(tmp_path, "Procfile", "release: flask db upgrade\nweb: fender run app:app\n")
    assert worst(tmp_path, "deploy:procfile") is Status.PASS


def test_unreadable_yaml_is_a_failure_naming_the_file(tmp_path):
    write(tmp_path, "k8s/broken.yaml", "kind: Deployment\n  spec: [\n")
    got = findings(tmp_path, "deploy")
    assert [status for _, status, _ in got] == [Status.FAIL]
    assert "k8s/broken.yaml" in got[0][2]


def test_sizes_and_durations_read_as_each_tool_reads_them():
    assert size_bytes("512Mi", K8S_UNITS) == 512 * 2**20
    assert size_bytes("1G", K8S_UNITS) == 10**9
    assert size_bytes("536870912", K8S_UNITS) == 2**29
    assert size_bytes("512m", DOCKER_UNITS) == size_bytes("512MB", DOCKER_UNITS) == 512 * 2**20
    assert size_bytes("1g", DOCKER_UNITS) == 2**30
    assert size_bytes("lots", K8S_UNITS) is None
    assert size_bytes("512Q", K8S_UNITS) is None
    assert seconds("1m30s") == 90
    assert seconds("45") == 45
    assert seconds("1.5s") == 1.5
    assert seconds("soon") is None
    assert seconds("10sx") is None


def test_the_command_line(tmp_path, capsys):
    write(tmp_path, "web.yaml", GOOD_POD)
    assert main(["doctor", "--deploy", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "[pass] deploy:prestop" in out
    assert out.rstrip().endswith(": ready")
    write(tmp_path, "web.yaml", textwrap.dedent(GOOD_POD).replace("/health/ready", "/ready"))
    assert main(["doctor", "--deploy", str(tmp_path)]) == 1 - 1  # a WARN only: ready
    assert main(["doctor", "--strict", "--deploy", str(tmp_path)]) == 1
    assert main(["doctor", "--deploy", str(tmp_path / "missing")]) == 2
    assert "--deploy" in capsys.readouterr().err


def test_the_shipped_deploy_files_pass_with_no_warning(capsys):
    """deploy/ is what teams copy: fender's own doctor finds nothing in it."""
    assert main(["doctor", "--strict", "--deploy", str(ROOT / "deploy")]) == 0, (
        capsys.readouterr().out
    )


def pod(old: str, new: str) -> str:
    """GOOD_POD with one change."""
    assert old in GOOD_POD
    return GOOD_POD.replace(old, new)


DRAIN = '["fender", "drain"]'
COMPOSE_WEB = "services:\n  web:\n    command: fender run app:app\n"


@pytest.mark.parametrize(
    "manifest",
    [
        pytest.param("kind: ConfigMap\nmetadata: null\ndata: {A: b}\n", id="cm-metadata-null"),
        pytest.param(pod("lifecycle: {preStop: {exec: {command: " + DRAIN + "}}}",
                         "lifecycle: null"), id="lifecycle-null"),
        pytest.param(pod("{limits: {memory: 512Mi}}", "{limits: null}"), id="limits-null"),
        pytest.param(pod("livenessProbe: {httpGet: {path: /health/live, port: http}}",
                         "livenessProbe: [1]"), id="probe-a-list"),
        pytest.param(pod("terminationGracePeriodSeconds: 45",
                         "terminationGracePeriodSeconds: null"), id="grace-null"),
        pytest.param(pod(DRAIN, '["fender", "drain", "--wait", "ten"]'), id="wait-not-a-number"),
        pytest.param("kind: Deployment\nspec: {template: {spec: {containers: {a: b}}}}\n",
                     id="containers-a-map"),
        pytest.param("kind: Deployment\nspec: {template: {spec: {containers: null}}}\n",
                     id="containers-null"),
        pytest.param(COMPOSE_WEB + "    healthcheck: null\n    deploy: {resources: null}\n"
                     "    environment: null\n", id="compose-nulls"),
        pytest.param(COMPOSE_WEB + "    environment: !reset []\n    stop_grace_period: 45s\n",
                     id="compose-reset-tag"),
    ],
)  # fmt: skip
def test_unusual_but_valid_files_give_findings_never_a_traceback(tmp_path, manifest):
    write(tmp_path, "file.yaml", textwrap.dedent(manifest))
    report = diagnose_deploy(tmp_path)
    assert report.findings
    assert not [f for f in report.findings if "could not be judged" in f.reason], report.findings


def test_wait_given_with_an_equals_sign_and_a_bad_wait(tmp_path):
    write(
        tmp_path,
        "web.yaml",
        GOOD_POD.replace('["fender", "drain"]', '["fender", "drain", "--wait=20"]'),
    )
    assert any("preStop waits 20s" in r for _, _, r in findings(tmp_path))
    write(
        tmp_path,
        "web.yaml",
        GOOD_POD.replace('["fender", "drain"]', '["fender", "drain", "--wait", "ten"]'),
    )
    assert worst(tmp_path, "deploy:prestop") is Status.FAIL


def test_only_containers_that_run_fender_are_judged_and_jobs_are_not(tmp_path):
    redis = """
        kind: Deployment
        metadata: {name: redis}
        spec: {template: {spec: {containers: [{name: redis, image: "redis:7"}]}}}
        ---
        kind: Job
        metadata: {name: migrate}
        spec:
          template:
            spec:
              containers:
                - name: migrate
                  image: example/web:1
                  command: ["fender", "run", "app:app"]
    """
    write(tmp_path, "others.yaml", redis)
    got = findings(tmp_path)
    assert [s for _, s, _ in got] == [Status.WARN], got  # nothing judged: "no fender service"


def test_env_from_prefix_is_applied(tmp_path):
    pod = textwrap.dedent(GOOD_POD).replace(
        "env: [", "envFrom: [{configMapRef: {name: web-env}, prefix: APP_}]\n          env: ["
    )
    write(tmp_path, "web.yaml", pod)
    write(
        tmp_path,
        "cm.yaml",
        "kind: ConfigMap\nmetadata: {name: web-env}\ndata: {FENDER_PORT: '9000'}\n",
    )
    assert worst(tmp_path, "deploy:readiness") is Status.PASS  # APP_FENDER_PORT is not fender's


def test_a_read_only_root_needs_the_runtime_and_metrics_directories_mounted(tmp_path):
    pod = textwrap.dedent(GOOD_POD).replace(
        "resources: {limits: {memory: 512Mi}}",
        "resources: {limits: {memory: 512Mi}}\n"
        "          securityContext: {readOnlyRootFilesystem: true}\n"
        "          volumeMounts: [{name: tmp, mountPath: /tmp}]",
    )
    write(tmp_path, "web.yaml", pod)
    assert worst(tmp_path, "deploy:writable") is Status.PASS  # both under /tmp by default
    moved = pod.replace('value: "10"}]', 'value: "10"}, {name: FENDER_RUNTIME_DIR, value: /run/x}]')
    write(tmp_path, "web.yaml", moved)
    got = findings(tmp_path, "deploy:writable")
    assert got[0][1] is Status.FAIL
    assert "FENDER_RUNTIME_DIR=/run/x" in got[0][2]


def test_compose_reads_the_image_env_and_env_files(tmp_path):
    write(
        tmp_path,
        "Dockerfile",
        "FROM python:3.11-slim\nENV FENDER_RUNTIME_DIR=/run/app\nUSER 1000\n"
        'HEALTHCHECK CMD ["fender", "probe", "http://127.0.0.1:8000/health/ready"]\n'
        'CMD ["fender", "run", "app:app"]\n',
    )
    write(tmp_path, "web.env", "# the team's settings\nWEB_WORKERS=8\n")
    compose = """
        services:
          web:
            build: .
            env_file: web.env
            read_only: true
            tmpfs: [/tmp]
            stop_grace_period: 45s
            mem_limit: 512m
            healthcheck: {test: ["CMD", "fender", "probe", "http://127.0.0.1:8000/health/ready"]}
    """
    write(tmp_path, "compose.yaml", compose)
    got = findings(tmp_path)
    assert worst(tmp_path, "deploy:writable") is Status.FAIL, got  # /run/app from the image
    assert any("8 workers x 128 MiB" in r for _, _, r in got), got


def test_curl_in_a_healthcheck_is_judged_by_the_base_image(tmp_path):
    full = (
        "FROM python:3.11\nUSER 1000\nHEALTHCHECK CMD curl -f http://localhost:8000/health/ready\n"
    )
    write(tmp_path, "Dockerfile", full)
    assert worst(tmp_path, "deploy:healthcheck") is Status.PASS  # the full image ships curl
    write(tmp_path, "Dockerfile", full.replace("python:3.11", "python:3.11-alpine"))
    assert worst(tmp_path, "deploy:healthcheck") is Status.FAIL
    wget = full.replace("python:3.11", "python:3.11-alpine").replace("curl -f", "wget -qO-")
    write(tmp_path, "Dockerfile", wget)
    assert worst(tmp_path, "deploy:healthcheck") is Status.PASS  # busybox wget


def test_a_helm_template_is_said_to_be_one(tmp_path):
    write(
        tmp_path,
        "templates/deployment.yaml",
        "{{- if .Values.enabled }}\nkind: Deployment\n{{- end }}\n",
    )
    got = findings(tmp_path, "deploy")
    assert [s for _, s, _ in got] == [Status.WARN]
    assert "template" in got[0][2]
