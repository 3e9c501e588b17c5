"""Alembic: a real tiny project in tmp_path, migrated step by step against SQLite and PostgreSQL;
the readiness check and ``fender doctor`` say whether the database is at head, naming what is
pending."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import orjson
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

import fender.db
from fender._status import Status
from fender.db._migrations import Migrations, migrations_check
from fender.doctor import diagnose
from fender.settings import load_settings

TOKEN = "t" * 40
AUTH = {"Authorization": f"Bearer {TOKEN}"}

ENV_PY = """\
from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
connectable = engine_from_config(
    config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
    poolclass=pool.NullPool,
)
with connectable.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""

REVISIONS = {
    "a1": (
        None,
        "create users",
        'op.create_table("users", sa.Column("id", sa.Integer, primary_key=True))',
    ),
    "b2": ("a1", "add email", 'op.add_column("users", sa.Column("email", sa.String(200)))'),
}


def alembic_project(root: Path, url: str, *, location: str = "migrations") -> Path:
    """alembic.ini, env.py and two revisions, as `alembic init` and `revision` would leave."""
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    (root / "migrations" / "env.py").write_text(ENV_PY)
    for revision, (down, message, upgrade) in REVISIONS.items():
        (versions / f"{revision}_{message.replace(' ', '_')}.py").write_text(
            textwrap.dedent(f'''\
                """{message}"""
                import sqlalchemy as sa
                from alembic import op

                revision = "{revision}"
                down_revision = {down!r}

                def upgrade():
                    {upgrade}
                ''')
        )
    ini = root / "alembic.ini"
    ini.write_text(
        f"[alembic]\nscript_location = {location}\nprepend_sys_path = .\npath_separator = os\n"
        f"sqlalchemy.url = {url}\n"
    )
    return ini


def upgrade(ini: Path, revision: str) -> None:
    command.upgrade(Config(str(ini)), revision)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/app.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def project(tmp_path, database_url, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # where alembic.ini is found by default
    return alembic_project(tmp_path, database_url)


def settings_for(url: str, **env: str):
    return load_settings({"DATABASE_URL": url, "FENDER_ENV": "development", **env}, env_file=None)


def check_result(ini: Path, url: str):
    engine = fender.db.engine(settings_for(url))
    return migrations_check(ini, engine).func()


def test_the_check_follows_the_database_to_head(project, database_url):
    result = check_result(project, database_url)
    assert result.status is Status.FAIL
    assert result.output == "2 pending migrations: a1 (create users), b2 (add email)"
    assert result.observed_value == 2
    upgrade(project, "a1")
    result = check_result(project, database_url)
    assert result.output == "1 pending migration: b2 (add email)"
    assert result.details["current"] == ["a1"]
    upgrade(project, "head")
    result = check_result(project, database_url)
    assert result.status is Status.PASS
    assert result.output == "at head (b2)"


def test_a_database_ahead_of_this_release_warns(project, database_url):
    upgrade(project, "head")
    with fender.db.engine(settings_for(database_url)).begin() as connection:
        connection.execute(text("update alembic_version set version_num = 'c3'"))
    result = check_result(project, database_url)
    assert result.status is Status.WARN
    assert result.output.startswith("database at c3, unknown to this release's migrations")


def test_loading_the_scripts_leaves_sys_path_alone(project, database_url):
    before = list(sys.path)
    Migrations(project).status(fender.db.engine(settings_for(database_url)))
    assert sys.path == before  # the ini's prepend_sys_path is for alembic's own command


def test_a_script_location_relative_to_the_ini_file(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/app.db"
    ini = alembic_project(tmp_path, url)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert check_result(ini, url).output.startswith("2 pending migrations")


def test_doctor_fails_with_the_pending_migrations_then_passes(project, database_url):
    environ = {"DATABASE_URL": database_url, "FENDER_ENV": "development"}
    [finding] = [f for f in diagnose(environ, env_file=None).findings if "migrations" in f.check]
    assert (finding.check, finding.status) == ("database_migrations", Status.FAIL)
    assert finding.reason == "2 pending migrations: a1 (create users), b2 (add email)"
    assert "alembic upgrade head" in finding.fix
    upgrade(project, "head")
    [finding] = [f for f in diagnose(environ, env_file=None).findings if "migrations" in f.check]
    assert (finding.status, finding.reason) == (Status.PASS, "at head (b2)")


def test_doctor_warns_when_the_database_does_not_answer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = "postgresql://app:pg-s3cret-password@127.0.0.1:1/app"
    ini = alembic_project(tmp_path, url)
    environ = {"DATABASE_URL": url, "FENDER_ALEMBIC_CONFIG": str(ini)}
    [finding] = [f for f in diagnose(environ, env_file=None).findings if "migrations" in f.check]
    assert finding.status is Status.WARN
    assert finding.reason.startswith(f"cannot compare {ini} with the database: OperationalError")
    assert "pg-s3cret-password" not in finding.reason


def test_without_alembic_the_check_says_so(project, database_url, monkeypatch):
    monkeypatch.setitem(sys.modules, "alembic", None)  # import alembic now fails
    result = check_result(project, database_url)
    assert result.status is Status.WARN
    assert result.output == f"{project} found, but alembic is not installed: pip install alembic"


def test_readiness_names_the_pending_migrations_and_stays_up(project, database_url):
    from flask import Flask

    from fender.flask import Fender

    app = Flask(__name__)
    Fender(app, env="development", database_url=database_url, admin_token=TOKEN)
    client = app.test_client()
    body = orjson.loads(client.get("/health/detailed", headers=AUTH).data)
    check = body["checks"]["database_migrations"]
    assert check["status"] == "fail"
    assert "a1 (create users), b2 (add email)" in check["output"]
    assert body["status"] == "warn"  # not critical: degraded, still serving
    assert client.get("/health/ready").status_code == 200
    upgrade(project, "head")
    body = orjson.loads(client.get("/health/detailed", headers=AUTH).data)
    assert body["checks"]["database_migrations"]["status"] == "pass"
    app.extensions["fender"].shutdown_sync()


def test_no_alembic_config_no_check(tmp_path, monkeypatch):
    from flask import Flask

    from fender.flask import Fender

    monkeypatch.chdir(tmp_path)
    app = Flask(__name__)
    Fender(app, env="development", database_url=f"sqlite:///{tmp_path}/app.db")
    names = {check.name for check in app.extensions["fender"].health.select()}
    assert "database" in names
    assert "database_migrations" not in names
