"""Backups of both node kinds, restored into the live node: the records and hints come back.

Redis runs as a real redis-server on this machine, so the RDB copy is taken too, and a cold
restore from it is tested by restarting the server on it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from examples.kvstore import backup as kvbackup
from examples.kvstore.backup import KEYS_FILE, MANIFEST, SQLITE_FILE, BackupError, backup, restore
from examples.kvstore.nodes import RedisNode, SqliteNode
from examples.kvstore.records import Hint, Node, Record

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 2.0


def populate(node: Node) -> None:
    for i in range(40):
        node.put(f"key-{i}", Record(f"value {i} \U0001f600", 100 + i))
    node.put("deleted", Record("soon gone", 5))
    node.put("deleted", Record(None, 6), hint=True)
    node.put("key-1", Record("older", 1), hint=True)  # not applied, hinted all the same
    dropped = node.add_hint("x", Record("x", 1))
    node.add_hint("key-2", None, expect=Record("value 2 \U0001f600", 102))
    node.put("key-3", Record("undone", 200), intent=True, created_ms=123)
    node.drop_hint(dropped)


def snapshot(node: Node) -> tuple[dict[str, Record], list[Hint]]:
    return dict(node.items()), node.hints(1000)


def restored(before: tuple[dict[str, Record], list[Hint]]) -> tuple[dict, list[Hint]]:
    """What a restore of ``before`` holds: the writes its intents name taken back exactly, and
    no compensation left (see round_trip)."""
    records, hints = dict(before[0]), before[1]
    for hint in hints:
        if hint.compensation and records.get(hint.key) == hint.expect:
            if hint.record is None:
                del records[hint.key]
            else:
                records[hint.key] = hint.record
    return records, [hint for hint in hints if not hint.compensation]


def alter(node: Node) -> int:
    """Change the node after the backup; returns the newest hint id handed out."""
    node.put("key-0", Record("changed", 10_000), hint=True)
    node.put("new", Record("written after the backup", 10_001))
    node.restore("key-5", None, expect=Record("value 5 \U0001f600", 105))
    node.put("deleted", Record("back", 10_002))
    for hint in node.hints(2):
        node.drop_hint(hint.id)
    return node.add_hint("after", Record("a", 1))


def round_trip(node: Node, url: str, out: Path) -> None:
    populate(node)
    before = snapshot(node)
    made = backup(url, out, timeout=TIMEOUT)
    assert made.manifest["keys"] == len(before[0])
    assert made.manifest["hints"] == len(before[1])
    newest = alter(node)
    assert snapshot(node) != before
    restore(url, out, timeout=TIMEOUT)
    # The live node (its connections open) sees the backup, but for its compensations: the
    # intents of writes in flight when it was taken would undo writes acknowledged since.
    assert any(hint.compensation for hint in before[1])
    assert snapshot(node) == restored(before)
    assert not node.inspect("key-2")[1]
    assert not node.inspect("key-3")[1]
    # ids never go back: a hint read before the restore cannot share an id with a new one
    assert node.add_hint("later", None, expect=Record("x", 1)) > newest


def test_sqlite_round_trip_into_the_live_file(tmp_path):
    path = tmp_path / "data" / "kv.db"
    url = f"sqlite:///{path}"
    node = SqliteNode(path, name="local", timeout=TIMEOUT)
    try:
        round_trip(node, url, tmp_path / "backup")
    finally:
        node.close()
    manifest = json.loads((tmp_path / "backup" / MANIFEST).read_text())
    assert manifest["kind"] == "sqlite"
    assert manifest["url"] == url
    assert manifest["files"] == [SQLITE_FILE]
    # the copy is one self-contained file
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == [SQLITE_FILE, MANIFEST]


def test_sqlite_restore_creates_a_missing_node(tmp_path):
    source = SqliteNode(tmp_path / "a.db", name="local", timeout=TIMEOUT)
    populate(source)
    backup(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "backup")
    restore(f"sqlite:///{tmp_path / 'new' / 'b.db'}", tmp_path / "backup")
    target = SqliteNode(tmp_path / "new" / "b.db", name="local", timeout=TIMEOUT)
    assert snapshot(target) == restored(snapshot(source))
    source.close()
    target.close()


@pytest.mark.redis
def test_redis_round_trip_on_the_running_server_and_its_rdb_copy(redis_server, tmp_path):
    node = RedisNode(redis_server.url, name="local", timeout=TIMEOUT)
    other = redis_server.client()
    other.set("not-kv", "left alone")
    try:
        round_trip(node, redis_server.url, tmp_path / "backup")
        assert other.get("not-kv") == b"left alone"
    finally:
        other.close()
        node.close()
    manifest = json.loads((tmp_path / "backup" / MANIFEST).read_text())
    assert manifest["kind"] == "redis"
    assert manifest["files"] == [KEYS_FILE, "dump.rdb"]
    assert manifest["notes"] == []
    assert manifest["dumped"] == manifest["keys"] + 3  # the hint queue, its counter, pending counts


@pytest.mark.redis
def test_the_redis_rdb_copy_restores_cold(redis_server, tmp_path):
    node = RedisNode(redis_server.url, name="local", timeout=TIMEOUT)
    populate(node)
    before = snapshot(node)
    backup(redis_server.url, tmp_path / "backup")
    redis_server.stop()
    for leftover in Path(redis_server.dir).iterdir():
        leftover.unlink()
    shutil.copy(tmp_path / "backup" / "dump.rdb", Path(redis_server.dir) / "dump.rdb")
    redis_server.start()
    try:
        assert snapshot(node) == before
        assert node.add_hint("next", None, expect=Record("x", 1)) > max(h.id for h in before[1])
    finally:
        node.close()


@pytest.mark.redis
def test_redis_backup_copies_the_aof_and_waits_for_a_save_scheduled_behind_its_rewrite(
    redis_server, tmp_path
):
    node = RedisNode(redis_server.url, name="local", timeout=TIMEOUT)
    populate(node)
    admin = redis_server.client()
    try:
        admin.config_set("appendonly", "yes")  # starts a rewrite: BGSAVE is only scheduled
        made = backup(redis_server.url, tmp_path / "backup")
        assert made.manifest["files"] == [KEYS_FILE, "dump.rdb", "appendonlydir"]
        assert any((tmp_path / "backup" / "appendonlydir").iterdir())
    finally:
        admin.close()
        node.close()


@pytest.mark.redis
def test_a_redis_restore_refuses_a_bad_dump_line(redis_url, tmp_path):
    node = RedisNode(redis_url, name="local", timeout=TIMEOUT)
    node.put("a", Record("v", 1))
    backup(redis_url, tmp_path / "backup")
    with (tmp_path / "backup" / KEYS_FILE).open("a") as dump:
        dump.write("{not json\n")
    with pytest.raises(BackupError, match=rf"{KEYS_FILE}:2: not a dumped key"):
        restore(redis_url, tmp_path / "backup")
    node.close()


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("redis://127.0.0.1:6379/0", True),
        ("redis://:pw@localhost:6379", True),
        ("rediss://[::1]:6380", True),
        ("unix:///run/redis.sock", True),
        ("redis://cache.internal:6379", False),
        ("redis://10.0.0.5:6379", False),
    ],
)
def test_only_a_server_on_this_machine_has_its_files_copied(url, local):
    assert kvbackup._on_this_machine(url) is local


# -- refusals ------------------------------------------------------------------------------------


def test_a_backup_never_overwrites_another(tmp_path):
    node = SqliteNode(tmp_path / "kv.db", name="local", timeout=TIMEOUT)
    node.put("a", Record("v", 1))
    url = f"sqlite:///{tmp_path / 'kv.db'}"
    backup(url, tmp_path / "backup")
    with pytest.raises(BackupError, match="already holds a backup"):
        backup(url, tmp_path / "backup")
    node.close()


def test_a_missing_sqlite_file_is_not_backed_up(tmp_path):
    with pytest.raises(BackupError, match="no database at"):
        backup(f"sqlite:///{tmp_path / 'none.db'}", tmp_path / "backup")
    assert not (tmp_path / "none.db").exists()


def test_a_directory_without_a_manifest_is_not_a_backup(tmp_path):
    with pytest.raises(BackupError, match=r"holds no manifest\.json"):
        restore(f"sqlite:///{tmp_path / 'kv.db'}", tmp_path)


@pytest.mark.redis
def test_a_backup_restores_only_into_its_kind(redis_url, tmp_path):
    node = SqliteNode(tmp_path / "kv.db", name="local", timeout=TIMEOUT)
    node.put("a", Record("v", 1))
    backup(f"sqlite:///{tmp_path / 'kv.db'}", tmp_path / "backup")
    with pytest.raises(BackupError, match="backup of a sqlite node"):
        restore(redis_url, tmp_path / "backup")
    node.close()


# -- the command line ----------------------------------------------------------------------------


def run_cli(*args: str, env_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KV_LOCAL_URL"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    if env_url is not None:
        env["KV_LOCAL_URL"] = env_url
    return subprocess.run(
        [sys.executable, "-m", "examples.kvstore", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_command_line_backs_up_and_restores_the_node_named_by_kv_local_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'kv.db'}"
    node = SqliteNode(tmp_path / "kv.db", name="local", timeout=TIMEOUT)
    populate(node)
    before = snapshot(node)
    done = run_cli("backup", "--out", str(tmp_path / "backup"), env_url=url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"backed up 41 keys and 4 hints of {url} to ")
    alter(node)
    done = run_cli("restore", "--from", str(tmp_path / "backup"), env_url=url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"restored {url} from ")
    assert snapshot(node) == restored(before)
    node.close()


@pytest.mark.redis
def test_the_command_line_with_a_redis_url(redis_server, tmp_path):
    node = RedisNode(redis_server.url, name="local", timeout=TIMEOUT)
    populate(node)
    before = snapshot(node)
    out = str(tmp_path / "backup")
    done = run_cli("backup", "--url", redis_server.url, "--out", out)
    assert done.returncode == 0, done.stderr
    alter(node)
    done = run_cli("restore", "--url", redis_server.url, "--from", out)
    assert done.returncode == 0, done.stderr
    assert "removed 1 keys written since" in done.stdout
    assert snapshot(node) == restored(before)
    node.close()


def test_the_command_line_exit_codes(tmp_path):
    bad_url = run_cli("backup", "--url", "postgresql://:hunter2@db/kv", "--out", str(tmp_path))
    assert bad_url.returncode == 2
    assert "expected redis://" in bad_url.stderr
    assert "hunter2" not in bad_url.stderr
    failed = run_cli("restore", "--url", f"sqlite:///{tmp_path / 'kv.db'}", "--from", str(tmp_path))
    assert failed.returncode == 1
    assert "restore: error:" in failed.stderr
    assert "holds no manifest.json" in failed.stderr
    assert failed.stdout == ""
