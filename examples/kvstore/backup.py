"""Back up a storage node to a directory, and restore a node from one, while the service runs.

``python -m examples.kvstore backup --url URL --out DIR`` and ``restore --url URL --from DIR``
(see ``__main__.py``). A backup directory holds ``manifest.json`` (written last, so that a
directory with one holds a complete backup: kind, URL with the password masked, time, counts,
files) and, by kind:

**SQLite**: ``kv.db``, a consistent copy made with SQLite's online backup API while the
service keeps writing (WAL: the copy reads one snapshot and blocks nobody). Restore copies it
back into the live file the same way, in one write transaction: the service's connections see
the old state, then the restored one. The copy is a plain SQLite file (rollback journal, no
``-wal``), so it can also be put in place by hand while the service is stopped.

**Redis**:

* ``keys.jsonl``, the logical dump used by ``restore``: one JSON object a line for every key
  under the node's prefix (``kv:``): ``key`` and ``dump`` (base64 of the key and of its DUMP
  payload) and ``pttl`` (``-1``: no expiry). Restore runs ``RESTORE key ttl payload REPLACE``
  for each on the running server, then deletes the prefix's keys the backup did not hold, so
  the node holds what it held at the backup. The dump is read a SCAN batch at a time, not as
  one snapshot: a record written meanwhile may be in it or not (last writer wins makes either
  harmless; the hint queue and its id counter are read together, in one MULTI). A DUMP payload
  restores on the same or a newer Redis.
* the server's RDB file, when the server runs on this machine (a loopback or Unix socket URL,
  and its ``dir``/``dbfilename`` readable here): BGSAVE is asked for, waited for (INFO
  persistence), and the file it wrote copied, with the AOF files when ``appendonly`` is on.
  **The RDB copy is for a cold restore**: stop the server, place the file as ``<dir>/<dbfilename>``
  (``CONFIG GET dir dbfilename``; with ``appendonly yes`` place the copied AOF directory too, or
  the server loads the AOF instead), then start it. It holds the whole database, not only the
  kv keys. The AOF files are copied as they are at that moment (the server loads a truncated
  tail, by ``aof-load-truncated``). When BGSAVE is refused (a managed Redis) or the files are
  elsewhere, the manifest says so under ``notes`` and the logical dump is the backup.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import ipaddress
import json
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import urlsplit

import redis

from examples.kvstore.nodes import RedisNode, SqliteNode, open_node
from examples.kvstore.records import Node, NodeUnavailable
from fender.redis import redis_client

__all__ = [
    "KEYS_FILE",
    "MANIFEST",
    "SQLITE_FILE",
    "BackupError",
    "Report",
    "backup",
    "restore",
]

MANIFEST: Final = "manifest.json"
SQLITE_FILE: Final = "kv.db"
KEYS_FILE: Final = "keys.jsonl"
FORMAT: Final = 1
_BATCH: Final = 500
_POLL: Final = 0.05
# How far the RDB file's mtime may be from the server's LASTSAVE and still be the file it just
# wrote (a same-named file on this machine that is not the server's is refused).
_SAME_FILE_SLACK: Final = 5


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclasses.dataclass(frozen=True, slots=True)
class Report:
    """What a backup or restore did: the manifest's fields, and where."""

    directory: Path
    manifest: dict[str, Any]


def backup(
    url: str, out: str | Path, *, timeout: float = 10.0, save_timeout: float = 600.0
) -> Report:
    """Back up the node at ``url`` into the directory ``out`` (created; must hold no backup).

    Args:
        url: The node (any URL :func:`examples.kvstore.nodes.open_node` takes).
        out: The backup directory.
        timeout: Seconds a call to the node may take (Redis socket, SQLite busy timeout).
        save_timeout: Seconds to wait for Redis's BGSAVE.

    Raises:
        ValueError: ``url`` is not a node URL.
        BackupError: The backup failed.
    """
    node = open_node(url, name="backup", timeout=timeout)
    directory = Path(out)
    if (directory / MANIFEST).exists():
        raise BackupError(
            f"{directory} already holds a backup ({MANIFEST}): choose another directory"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if isinstance(node, SqliteNode):
            details = _backup_sqlite(node, directory, timeout)
        else:
            details = _backup_redis(url, cast("RedisNode", node), directory, timeout, save_timeout)
        manifest = {
            "format": FORMAT,
            "kind": _kind(node),
            "url": node.url,
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            **details,
        }
        temporary = directory / f"{MANIFEST}.tmp"
        temporary.write_text(json.dumps(manifest, indent=2) + "\n")
        temporary.replace(directory / MANIFEST)
    except OSError as exc:
        raise BackupError(f"cannot write the backup in {directory}: {exc}") from exc
    finally:
        node.close()
    return Report(directory, manifest)


def restore(url: str, source: str | Path, *, timeout: float = 10.0) -> Report:
    """Restore the node at ``url`` from the backup directory ``source`` (the node may be live).

    Raises:
        ValueError: ``url`` is not a node URL.
        BackupError: ``source`` is not a usable backup for this node, or the restore failed.
    """
    node = open_node(url, name="restore", timeout=timeout)
    directory = Path(source)
    try:
        manifest = _read_manifest(directory)
        if manifest.get("kind") != _kind(node):
            raise BackupError(
                f"{directory} is a backup of a {manifest.get('kind')} node; {node.url} is a "
                f"{_kind(node)} node"
            )
        if isinstance(node, SqliteNode):
            details = _restore_sqlite(node, directory, timeout)
        else:
            details = _restore_redis(url, cast("RedisNode", node), directory, timeout)
    finally:
        node.close()
    return Report(directory, {**manifest, "url": node.url, "restored": details})


def _kind(node: object) -> str:
    return "sqlite" if isinstance(node, SqliteNode) else "redis"


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(
            f"{directory} holds no {MANIFEST}: not a (complete) backup made by "
            "`python -m examples.kvstore backup`"
        ) from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"cannot read {path}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not a backup manifest of format {FORMAT}")
    return cast("dict[str, Any]", manifest)


# -- SQLite ------------------------------------------------------------------------------------


def _counts(conn: sqlite3.Connection, what: str) -> dict[str, int]:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"records", "hints"} <= tables:
        raise BackupError(f"{what} is not a key-value node's database (no records/hints tables)")
    records = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    hints = conn.execute("SELECT count(*) FROM hints").fetchone()[0]
    return {"keys": int(records), "hints": int(hints)}


def _backup_sqlite(node: SqliteNode, directory: Path, timeout: float) -> dict[str, Any]:
    if not node.path.is_file():
        raise BackupError(f"no database at {node.path}")
    target = directory / SQLITE_FILE
    try:
        with (
            contextlib.closing(sqlite3.connect(node.path, timeout=timeout)) as live,
            contextlib.closing(sqlite3.connect(target)) as copy,
        ):
            counts = _counts(live, str(node.path))
            live.backup(copy)
            copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            counts = _counts(copy, str(target))
    except sqlite3.Error as exc:
        target.unlink(missing_ok=True)
        raise BackupError(f"cannot back up {node.path}: {exc}") from exc
    return {**counts, "files": [SQLITE_FILE]}


# Hint ids never go back, a restore included: a replayer that read hint 7 before the restore
# must not drop, after it, a new hint that was given id 7 again.
_INSERT_SEQUENCE: Final = (
    "INSERT INTO sqlite_sequence (name, seq) SELECT 'hints', 0 "
    "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'hints')"
)
_RAISE_SEQUENCE: Final = "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'hints'"


def _last_hint_id(conn: sqlite3.Connection) -> int:
    """The last hint id the live file handed out (0 for a new file)."""
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'hints'").fetchone()
    except sqlite3.OperationalError:  # no sqlite_sequence yet: a new file
        return 0
    return 0 if row is None else int(row[0])


def _restore_sqlite(node: SqliteNode, directory: Path, timeout: float) -> dict[str, Any]:
    source = directory / SQLITE_FILE
    if not source.is_file():
        raise BackupError(f"{source} is missing: the backup is incomplete")
    try:
        with contextlib.closing(
            sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
        ) as backup_db:
            if backup_db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise BackupError(f"{source} is damaged (PRAGMA quick_check failed)")
            counts = _counts(backup_db, str(source))
            node.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.closing(sqlite3.connect(node.path, timeout=timeout)) as live:
                last_id = _last_hint_id(live)
                backup_db.backup(live)
                # As the nodes open it, whatever the copy's header says.
                live.execute("PRAGMA journal_mode = WAL")
                with live:
                    live.execute(_INSERT_SEQUENCE)
                    live.execute(_RAISE_SEQUENCE, (last_id,))
        _settle_compensations(node)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot restore {node.path} from {source}: {exc}") from exc
    except OSError as exc:
        raise BackupError(f"cannot create {node.path.parent}: {exc}") from exc
    return counts


# -- Redis -------------------------------------------------------------------------------------


def _client(url: str, timeout: float) -> redis.Redis:
    return cast("redis.Redis", redis_client(url, timeout=timeout, max_connections=2))


@contextlib.contextmanager
def _redis_errors(what: str) -> Iterator[None]:
    try:
        yield
    except (redis.RedisError, OSError, NodeUnavailable) as exc:
        raise BackupError(f"{what}: {type(exc).__name__}: {exc}") from exc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _glob(prefix: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in prefix) + "*"


def _backup_redis(
    url: str, node: RedisNode, directory: Path, timeout: float, save_timeout: float
) -> dict[str, Any]:
    client = _client(url, timeout)
    try:
        with _redis_errors(f"cannot back up {node.url}"):
            keys, records = _dump_keys(client, node.prefix, directory / KEYS_FILE)
            hints = node.hint_count()
        notes: list[str] = []
        files = [KEYS_FILE, *_copy_persistence(client, url, directory, save_timeout, notes)]
    finally:
        client.close()
    return {
        "prefix": node.prefix,
        "keys": records,
        "hints": hints,
        "dumped": keys,
        "files": files,
        "notes": notes,
    }


def _dump_keys(client: redis.Redis, prefix: str, path: Path) -> tuple[int, int]:
    """Write every key under ``prefix`` to ``path``; returns (keys, records) written."""
    records = f"{prefix}r:".encode()
    written = found_records = 0
    temporary = path.with_name(f"{path.name}.tmp")
    try:
        with temporary.open("w") as out:
            for name, pttl, payload in _dumped(client, prefix):
                line = {"key": _b64(name), "pttl": pttl, "dump": _b64(payload)}
                out.write(json.dumps(line) + "\n")
                written += 1
                found_records += name.startswith(records)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    return written, found_records


def _dumped(client: redis.Redis, prefix: str) -> Iterator[tuple[bytes, int, bytes]]:
    """DUMP and PTTL of every key under ``prefix``, a SCAN batch per round trip."""
    # The hint queue, its counter, the pending counts and the claims in one MULTI: a counter
    # behind the queue's last id would cost a catch-up on the first hint after a restore, and
    # pending counts out of step with the queue would leave a key pending for ever.
    queue_keys = [f"{prefix}h:{name}".encode() for name in ("seq", "q", "p", "c")]
    seen = set(queue_keys)
    with client.pipeline(transaction=True) as pipe:
        yield from _dump_batch(pipe, queue_keys)
    cursor = None
    while cursor != 0:
        cursor, batch = client.scan(cursor or 0, match=_glob(prefix), count=_BATCH)
        names = [name for name in cast("list[bytes]", batch) if name not in seen]
        seen.update(names)  # SCAN may return a key twice
        with client.pipeline(transaction=False) as pipe:
            yield from _dump_batch(pipe, names)


def _dump_batch(
    pipe: redis.client.Pipeline, names: list[bytes]
) -> Iterator[tuple[bytes, int, bytes]]:
    for name in names:
        pipe.dump(name)
        pipe.pttl(name)
    replies = pipe.execute()
    for name, payload, pttl in zip(names, replies[::2], replies[1::2], strict=True):
        if payload is not None:  # None: removed since SCAN saw it
            yield name, int(pttl), payload


def _on_this_machine(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme.lower() == "unix":
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _config(client: redis.Redis, name: str) -> str | None:
    value = client.config_get(name).get(name)
    return value.decode() if isinstance(value, bytes) else value


class _NoCopy(Exception):  # noqa: N818  (not an error: a note in the manifest)
    """Why the server's files are not copied."""


def _copy_persistence(
    client: redis.Redis, url: str, directory: Path, save_timeout: float, notes: list[str]
) -> list[str]:
    """BGSAVE, wait, and copy the RDB (and AOF) files here when they are on this machine."""
    try:
        rdb, aof = _fresh_snapshot(client, url, save_timeout)
    except _NoCopy as exc:
        notes.append(f"no RDB copy: {exc}; {KEYS_FILE} is the backup")
        return []
    except redis.ResponseError as exc:  # BGSAVE or CONFIG renamed or refused (managed, ACL)
        notes.append(f"no RDB copy: the server refused ({exc}); {KEYS_FILE} is the backup")
        return []
    except (redis.RedisError, OSError) as exc:
        raise BackupError(f"BGSAVE failed: {type(exc).__name__}: {exc}") from exc
    shutil.copy2(rdb, directory / rdb.name)
    copied = [rdb.name]
    if aof is not None:
        if aof.is_dir():
            shutil.copytree(aof, directory / aof.name)
        else:
            shutil.copy2(aof, directory / aof.name)
        copied.append(aof.name)
    return copied


def _fresh_snapshot(client: redis.Redis, url: str, save_timeout: float) -> tuple[Path, Path | None]:
    """BGSAVE and wait; the RDB file it wrote (and the AOF), or _NoCopy saying why not here."""
    saved_at = _bgsave(client, save_timeout)
    if not _on_this_machine(url):
        raise _NoCopy("the server is not on this machine (its new snapshot is in its dir)")
    rdb, aof = _server_files(client)
    try:
        written_at = rdb.stat().st_mtime
    except OSError as exc:
        raise _NoCopy(f"{rdb} is not readable here ({exc.strerror})") from None
    if abs(written_at - saved_at) > _SAME_FILE_SLACK:
        raise _NoCopy(f"{rdb} here is not the snapshot the server just wrote")
    return rdb, aof


def _server_files(client: redis.Redis) -> tuple[Path, Path | None]:
    """The server's RDB file, and its AOF (a directory since Redis 7) if ``appendonly``."""
    server_dir, dbfilename = _config(client, "dir"), _config(client, "dbfilename")
    if not server_dir or not dbfilename:
        raise _NoCopy("the server did not say its dir and dbfilename")
    aof = None
    if _config(client, "appendonly") == "yes":
        name = _config(client, "appenddirname") or _config(client, "appendfilename")
        aof = Path(server_dir) / name if name else None
    return Path(server_dir) / dbfilename, aof


def _bgsave(client: redis.Redis, save_timeout: float) -> float:
    """Ask for a BGSAVE and wait for it; returns the server's LASTSAVE (Unix seconds)."""
    deadline = time.monotonic() + save_timeout
    while True:
        before = client.info("persistence")
        try:
            client.bgsave(schedule=True)  # scheduled, not refused, while an AOF rewrite runs
            break
        except redis.ResponseError as exc:
            if "in progress" not in str(exc):
                raise
            # Another save began before ours was asked for, from older data: wait, ask again.
            _wait(client, deadline, lambda info: not info["rdb_bgsave_in_progress"])
    seen_running = False

    def finished(info: dict[str, Any]) -> bool:
        nonlocal seen_running
        if info["rdb_bgsave_in_progress"]:
            seen_running = True
            return False
        if "rdb_saves" in info:  # Redis 7: counts saves as they start
            return bool(info["rdb_saves"] > before["rdb_saves"])
        return seen_running or info["rdb_last_save_time"] > before["rdb_last_save_time"]

    info = _wait(client, deadline, finished)
    if info.get("rdb_last_bgsave_status") != "ok":
        raise BackupError("the server's BGSAVE failed (rdb_last_bgsave_status); see its log")
    return float(info["rdb_last_save_time"])


def _wait(
    client: redis.Redis, deadline: float, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    while True:
        info = client.info("persistence")
        if done(info):
            return info
        if time.monotonic() > deadline:
            raise BackupError("BGSAVE did not finish in time; try a larger --save-timeout")
        time.sleep(_POLL)


# Hint ids never go back (see _INSERT_SEQUENCE): the counter ends at least where it was.
_RAISE_COUNTER: Final = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
"""


def _restore_redis(url: str, node: RedisNode, directory: Path, timeout: float) -> dict[str, Any]:
    path = directory / KEYS_FILE
    if not path.is_file():
        raise BackupError(
            f"{path} is missing: the backup is incomplete (an RDB copy restores only cold: "
            "place it as the server's dir/dbfilename before the server starts)"
        )
    entries = list(_read_keys(path))
    client = _client(url, timeout)
    restored: set[bytes] = set()
    seq = f"{node.prefix}h:seq"
    try:
        with _redis_errors(f"cannot restore {node.url}"):
            last_id = client.get(seq) or b"0"
            for start in range(0, len(entries), _BATCH):
                with client.pipeline(transaction=False) as pipe:
                    for name, pttl, payload in entries[start : start + _BATCH]:
                        pipe.restore(name, pttl, payload, replace=True)
                        restored.add(name)
                    pipe.execute()
            removed = _remove_others(client, node.prefix, restored)
            client.eval(_RAISE_COUNTER, 1, seq, last_id)
    finally:
        client.close()
    _settle_compensations(node)
    records = sum(name.startswith(f"{node.prefix}r:".encode()) for name in restored)
    return {"keys": records, "restored": len(restored), "removed": removed}


def _read_keys(path: Path) -> Iterator[tuple[bytes, int, bytes]]:
    """The keys of a logical dump: (name, ttl in ms for RESTORE, payload); expired ones left."""
    with path.open() as lines:
        for number, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
                name, payload = base64.b64decode(entry["key"]), base64.b64decode(entry["dump"])
                pttl = int(entry["pttl"])
            except (ValueError, KeyError, TypeError) as exc:
                raise BackupError(f"{path}:{number}: not a dumped key ({exc})") from exc
            if pttl == -1:
                yield name, 0, payload  # RESTORE's 0: no expiry
            elif pttl > 0:
                yield name, pttl, payload


def _remove_others(client: redis.Redis, prefix: str, keep: set[bytes]) -> int:
    """Delete the keys under ``prefix`` that are not in ``keep``; returns how many."""
    others = [n for n in client.scan_iter(match=_glob(prefix), count=_BATCH) if n not in keep]
    removed = 0
    for start in range(0, len(others), _BATCH):
        removed += int(client.unlink(*others[start : start + _BATCH]))
    return removed


def _settle_compensations(node: Node) -> int:
    """Take back, exactly, the writes a restored backup's intents name, and drop the intents.

    A backup taken while CP writes were in flight holds their intents. Left as they are, they
    would fall due at once and undo, forward, writes acknowledged since; dropped alone, they
    would leave a write nobody acknowledged. Taken back (compare-and-set to the record before
    it), the restored node holds what it held before that write, and the other node, which saw
    how it ended, wins the next read's repair either way. Returns how many were settled.
    """
    settled = 0
    try:
        after = 0
        while page := node.hints(1000, after=after):
            for hint in page:
                after = hint.id
                if hint.compensation:
                    node.restore(hint.key, hint.record, expect=hint.expect)
                    node.drop_hint(hint.id, force=True)
                    settled += 1
    except NodeUnavailable as exc:
        raise BackupError(f"cannot settle the restored intents of {node.url}: {exc}") from exc
    return settled
