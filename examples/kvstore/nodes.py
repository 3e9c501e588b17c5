"""The two kinds of storage node: a SQLite file and a Redis server (see :class:`Node`).

:func:`open_node` picks one from a URL: ``redis://``, ``rediss://`` or ``unix://`` for Redis,
``sqlite:///path.db`` for SQLite (SQLAlchemy's form: ``sqlite:///data/kv.db`` is relative to
the working directory, ``sqlite:////var/lib/kv.db`` absolute).

Both keep one promise of the protocol: each method is one round trip (one SQLite transaction,
or one Redis command or Lua script), so a record and its hint are stored together or not at
all, and every failure (an unreachable server, a timeout, a locked or corrupt file) is a
:class:`NodeUnavailable` for the service's circuit breakers to count. Neither retries: a retry
inside a request only delays the breaker's verdict.

Keys and values are strings of Unicode scalar values (what UTF-8 encodes); last writer wins
compares equal versions' values by code point, as :meth:`Record.order` does.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, cast

import redis

from examples.kvstore.records import (
    Hint,
    Node,
    NodeUnavailable,
    PutResult,
    Record,
    plan_put,
)
from fender.redis import redis_client
from fender.settings import redact_url

__all__ = ["REDIS_SCHEMES", "RedisNode", "SqliteNode", "open_node", "sqlite_path"]

REDIS_SCHEMES: Final = ("redis", "rediss", "unix")
_SQLITE_PREFIX: Final = "sqlite:///"
_PAGE: Final = 500
"""Keys read per round trip (SQLite page, Redis SCAN batch) by ``items()``."""


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def open_node(url: str, *, name: str, timeout: float) -> Node:
    """The node for ``url``, by its scheme: Redis or SQLite.

    Args:
        url: Where the node lives (the password, if any, is masked in ``node.url``).
        name: The node's role for this instance (``local`` or ``peer``).
        timeout: Seconds a call may wait (``NETWORK_TIMEOUT_SEC``): the Redis socket timeouts,
            or SQLite's busy timeout on a file locked by another process.

    Raises:
        ValueError: Any other scheme, or a SQLite URL without a file path.
    """
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in REDIS_SCHEMES:
        return RedisNode(url, name=name, timeout=timeout)
    if scheme == "sqlite":
        return SqliteNode(sqlite_path(url), name=name, timeout=timeout)
    raise ValueError(
        f"{redact_url(url)!r} is not a storage node URL: expected redis://, rediss:// or "
        "unix:// (Redis), or sqlite:///path/to/file.db (SQLite)"
    )


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///path`` URL (``sqlite:////abs/path`` for an absolute one).

    Raises:
        ValueError: Not that form, no path, an in-memory database (each connection would
            see its own) or query options (none are read).
    """
    if not url.lower().startswith(_SQLITE_PREFIX):
        raise ValueError(f"{url!r}: expected sqlite:///path/to/file.db")
    path = url[len(_SQLITE_PREFIX) :]
    if not path or path.startswith(":memory:") or "?" in path:
        raise ValueError(
            f"{url!r}: expected sqlite:///path/to/file.db (a file, no ?options, not :memory:)"
        )
    return Path(path)


# -- SQLite ------------------------------------------------------------------------------------

# A hint's record: ``version`` NULL when it has none (a compensation that removes the key);
# ``value`` NULL with a version is a tombstone; the same for ``expect`` (NULL: a replication)
# and ``expect_value``. AUTOINCREMENT: an id is never handed out twice, even after the newest
# hint is dropped, so a replayer's late drop_hint cannot hit a newer hint. The partial index
# finds a key's queued compensations (``inspect``).
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS records (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS hints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    value TEXT,
    version INTEGER,
    expect INTEGER,
    expect_value TEXT,
    created_ms INTEGER NOT NULL DEFAULT 0,
    claimed INTEGER NOT NULL DEFAULT 0
);
"""
# Files written before compensations named their record (an earlier layout) gain the columns.
_ADDED_COLUMNS: Final = {
    "expect_value": "ALTER TABLE hints ADD COLUMN expect_value TEXT",
    "created_ms": "ALTER TABLE hints ADD COLUMN created_ms INTEGER NOT NULL DEFAULT 0",
    "claimed": "ALTER TABLE hints ADD COLUMN claimed INTEGER NOT NULL DEFAULT 0",
}
_INDEX: Final = "CREATE INDEX IF NOT EXISTS hints_pending ON hints (key) WHERE expect IS NOT NULL"
_UPSERT: Final = (
    "INSERT INTO records (key, value, version) VALUES (?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version"
)


def _record(value: str | None, version: int | None) -> Record | None:
    return None if version is None else Record(value, version)


class SqliteNode:
    """A storage node in a SQLite file, in WAL mode (readers do not block the writer).

    Threads share a pool of connections (one per concurrent call); gunicorn's workers are
    processes with pools of their own, serialised by SQLite's file locks: a call that finds
    the file locked waits up to ``timeout`` seconds, then fails as NodeUnavailable. The file
    and its directory are created on first use, so a bad path is an unavailable node (the
    service starts degraded), not a crash.
    """

    def __init__(self, path: str | os.PathLike[str], *, name: str, timeout: float) -> None:
        """A node in ``path``; nothing is opened until the first call."""
        self.name = name
        self.path = Path(path)
        self.url = f"{_SQLITE_PREFIX}{self.path}"
        self.timeout = timeout
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._schema_ready = False

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit (isolation_level None): each method states its own transaction.
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise NodeUnavailable(self.name, _reason(exc)) from exc
        if not self._schema_ready:
            try:
                self._create_schema(conn)
            except sqlite3.Error as exc:
                conn.close()
                raise NodeUnavailable(self.name, _reason(exc)) from exc
            self._schema_ready = True
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        """Tables, columns, index, and WAL mode; once per node, whoever else opens the file.

        Switching a new file to WAL takes a lock for which SQLite answers "locked" at once
        rather than wait (another worker may be creating the same file), so that step alone is
        retried until the busy timeout; the rest is one IMMEDIATE transaction, which waits.
        """
        deadline = time.monotonic() + self.timeout
        while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            try:
                conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)  # a back-off between tries, not a wait for an event
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(None, (part.strip() for part in _SCHEMA.split(";"))):
                conn.execute(statement)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(hints)")}
            for column, statement in _ADDED_COLUMNS.items():
                if column not in columns:
                    conn.execute(statement)
            conn.execute(_INDEX)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._pid != os.getpid():
                # Forked (gunicorn's preload): the parent's connections are the parent's; a
                # SQLite connection must not cross a fork. Forget them without closing.
                self._idle, self._pid = [], os.getpid()
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._open()
        try:
            yield conn
        except sqlite3.Error as exc:
            conn.close()  # also rolls back a transaction the error left open
            raise NodeUnavailable(self.name, _reason(exc)) from exc
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._idle.append(conn)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connection() as conn:
            # IMMEDIATE takes the write lock first (waiting up to the busy timeout); a
            # deferred transaction that reads then writes can fail at once when another
            # process wrote in between, whatever the timeout.
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")

    @staticmethod
    def _current(conn: sqlite3.Connection, key: str) -> Record | None:
        row = conn.execute("SELECT value, version FROM records WHERE key = ?", (key,)).fetchone()
        return None if row is None else Record(row[0], row[1])

    @staticmethod
    def _queue(
        conn: sqlite3.Connection,
        key: str,
        record: Record | None,
        expect: Record | None,
        created_ms: int,
    ) -> int:
        cursor = conn.execute(
            "INSERT INTO hints (key, value, version, expect, expect_value, created_ms) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                key,
                record and record.value,
                record and record.version,
                expect and expect.version,
                expect and expect.value,
                created_ms,
            ),
        )
        return cast("int", cursor.lastrowid)

    def get(self, key: str) -> Record | None:
        """The key's record (a tombstone included), or None."""
        with self._connection() as conn:
            return self._current(conn, key)

    def inspect(self, key: str) -> tuple[Record | None, bool]:
        """The key's record, and whether a compensation for it is queued (one transaction)."""
        with self._connection() as conn:
            conn.execute("BEGIN")  # one snapshot for both reads (an error closes the connection)
            current = self._current(conn, key)
            pending = self._pending(conn, key)
            conn.execute("COMMIT")
        return current, pending

    @staticmethod
    def _pending(conn: sqlite3.Connection, key: str) -> bool:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM hints WHERE key = ? AND expect IS NOT NULL)", (key,)
        ).fetchone()
        return bool(row[0])

    def put(
        self,
        key: str,
        record: Record,
        *,
        hint: bool = False,
        intent: bool = False,
        exclusive: bool = False,
        created_ms: int = 0,
    ) -> PutResult:
        """Store ``record`` if newer; queue its hint or its intent in the same transaction."""
        with self._transaction() as conn:
            previous = self._current(conn, key)
            pending = (intent or exclusive) and self._pending(conn, key)
            plan = plan_put(
                record, previous, pending=pending, hint=hint, intent=intent, exclusive=exclusive
            )
            if plan.applied:
                conn.execute(_UPSERT, (key, record.value, record.version))
            hint_id = None
            if plan.queued is not None:
                hint_id = self._queue(conn, key, *plan.queued, created_ms)
        return PutResult(plan.applied, previous, hint_id, plan.busy)

    def restore(self, key: str, previous: Record | None, *, expect: Record | None) -> bool:
        """If the key holds exactly ``expect`` (None: nothing), put back ``previous``."""
        with self._transaction() as conn:
            if self._current(conn, key) != expect:
                return False
            if previous is None:
                conn.execute("DELETE FROM records WHERE key = ?", (key,))
            else:
                conn.execute(_UPSERT, (key, previous.value, previous.version))
        return True

    def add_hint(
        self,
        key: str,
        record: Record | None,
        *,
        expect: Record | None = None,
        created_ms: int = 0,
    ) -> int:
        """Queue a hint; returns its id."""
        with self._transaction() as conn:
            return self._queue(conn, key, record, expect, created_ms)

    def hints(self, limit: int, *, after: int = 0) -> list[Hint]:
        """The oldest ``limit`` hints with an id above ``after``, in id order."""
        if limit < 1:
            return []
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT id, key, value, version, expect, expect_value, created_ms FROM hints "
                "WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [
            Hint(id_, key, _record(value, version), _record(expect_value, expect), created)
            for id_, key, value, version, expect, expect_value, created in rows
        ]

    def drop_hint(self, hint_id: int, *, force: bool = False) -> bool:
        """Remove a hint; True if this call removed it (a claimed one only with ``force``)."""
        with self._connection() as conn:
            deleted = conn.execute(
                "DELETE FROM hints WHERE id = ? AND (claimed = 0 OR ?)", (hint_id, force)
            )
            return deleted.rowcount > 0

    def claim_hint(self, hint_id: int) -> bool:
        """Mark a hint as the sync's; False if it is gone."""
        with self._connection() as conn:
            return (
                conn.execute("UPDATE hints SET claimed = 1 WHERE id = ?", (hint_id,)).rowcount > 0
            )

    def hint_count(self) -> int:
        """How many hints are queued."""
        with self._connection() as conn:
            return cast("int", conn.execute("SELECT count(*) FROM hints").fetchone()[0])

    def items(self) -> Iterator[tuple[str, Record]]:
        """Every key and record in key order, read a page at a time (not one snapshot).

        The first page is read now, so an unavailable node raises here, not mid-iteration.
        """
        return self._pages(self._page(None))

    def _page(self, after: str | None) -> list[tuple[str, Record]]:
        with self._connection() as conn:
            if after is None:
                rows = conn.execute(
                    "SELECT key, value, version FROM records ORDER BY key LIMIT ?", (_PAGE,)
                )
            else:
                rows = conn.execute(
                    "SELECT key, value, version FROM records WHERE key > ? ORDER BY key LIMIT ?",
                    (after, _PAGE),
                )
            return [(key, Record(value, version)) for key, value, version in rows]

    def _pages(self, page: list[tuple[str, Record]]) -> Iterator[tuple[str, Record]]:
        while page:
            yield from page
            page = self._page(page[-1][0]) if len(page) == _PAGE else []

    def ping(self) -> None:
        """Return when the file answers a query."""
        with self._connection() as conn:
            conn.execute("SELECT 1 FROM records LIMIT 1").fetchall()

    def close(self) -> None:
        """Close the idle connections (a later call opens new ones)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


# -- Redis -------------------------------------------------------------------------------------

# Record.order() in Lua, and the hint queue. Three rules keep it exact:
# * versions are compared with tonumber (exact below 2**53) but stored and returned as the
#   strings the client sent: Lua's tostring of a number keeps 14 digits;
# * Lua's < on strings is strcoll, the server's locale order; Python compares code points,
#   which is the byte order of UTF-8: values are compared byte by byte;
# * Redis does not roll a failed script back, so the commands that can fail (the hint's INCR
#   and XADD on a key of the wrong type) run before the record is written.
# A hint is a stream entry ``<id>-0`` (fields k: key; n, v: its record's version and value; e,
# ev: the record a compensation expects; t: when it was queued; n or e absent for none, v or ev
# for a tombstone), its id from INCR: XDEL of an id is idempotent, and the stream refuses an id
# not above its last one, so a counter that fell behind (restored or deleted by hand) is caught
# up with the stream instead of failing every hint after it. The hash ``p`` counts each key's
# queued compensations (``inspect``): every script that adds or drops one keeps it.
_LUA_COMMON: Final = """
local function above(nver, nhas, nval, cver, chas, cval)
  if nver ~= cver then return nver > cver end
  if nhas ~= chas then return nhas end
  if not nhas or nval == cval then return false end
  for i = 1, math.min(#nval, #cval) do
    local a, b = string.byte(nval, i), string.byte(cval, i)
    if a ~= b then return a > b end
  end
  return #nval > #cval
end

local function append_hint(seq, queue, fields)
  local id = redis.call('INCR', seq)
  local added = redis.pcall('XADD', queue, string.format('%d-0', id), unpack(fields))
  if type(added) == 'table' and added.err then
    local info = redis.call('XINFO', 'STREAM', queue)
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then
        id = math.max(id, tonumber(string.match(info[i + 1], '^(%d+)')) + 1)
      end
    end
    redis.call('SET', seq, string.format('%d', id))
    redis.call('XADD', queue, string.format('%d-0', id), unpack(fields))
  end
  return id
end

-- record and expect: {version, value or false} or false for none
local function hint_fields(key, record, expect, created)
  local fields = {'k', key, 't', created}
  if record then
    table.insert(fields, 'n')
    table.insert(fields, record[1])
    if record[2] then
      table.insert(fields, 'v')
      table.insert(fields, record[2])
    end
  end
  if expect then
    table.insert(fields, 'e')
    table.insert(fields, expect[1])
    if expect[2] then
      table.insert(fields, 'ev')
      table.insert(fields, expect[2])
    end
  end
  return fields
end
"""

# KEYS: record, hint counter, hint stream, pending counts. ARGV: version, has value, value,
# queue ('' none, 'h' its hint, 'i' its intent), key, created, exclusive. Returns {applied,
# hint id or nil, previous version or nil, previous value or nil, busy}.
_PUT: Final = (
    _LUA_COMMON
    + """
local cur = redis.call('HMGET', KEYS[1], 'n', 'v')
if (ARGV[4] == 'i' or ARGV[7] == '1') and redis.call('HEXISTS', KEYS[4], ARGV[5]) == 1 then
  return {0, false, cur[1], cur[2], 1}
end
local nhas, nval = ARGV[2] == '1', ARGV[3]
local applied = not cur[1] or above(
  tonumber(ARGV[1]), nhas, nval, tonumber(cur[1]), cur[2] ~= false, cur[2] or '')
local mine = {ARGV[1], nhas and nval}
local hint_id = false
if ARGV[4] == 'h' then
  hint_id = append_hint(KEYS[2], KEYS[3], hint_fields(ARGV[5], mine, false, ARGV[6]))
elseif ARGV[4] == 'i' then
  local previous = cur[1] and {cur[1], cur[2]} or false
  hint_id = append_hint(KEYS[2], KEYS[3], hint_fields(ARGV[5], previous, mine, ARGV[6]))
  redis.call('HINCRBY', KEYS[4], ARGV[5], 1)
end
if applied then
  if nhas then
    redis.call('HSET', KEYS[1], 'n', ARGV[1], 'v', nval)
  else
    redis.call('HSET', KEYS[1], 'n', ARGV[1])
    redis.call('HDEL', KEYS[1], 'v')
  end
end
return {applied and 1 or 0, hint_id, cur[1], cur[2], 0}
"""
)

# KEYS: record. ARGV: expected (1: a record, 0: nothing), its version, has value, value; then
# the same four for the record to put back. Returns 1 if it swapped (compare-and-set).
_RESTORE: Final = """
local cur = redis.call('HMGET', KEYS[1], 'n', 'v')
if ARGV[1] == '1' then
  if not cur[1] or tonumber(cur[1]) ~= tonumber(ARGV[2]) then return 0 end
  if (cur[2] ~= false) ~= (ARGV[3] == '1') then return 0 end
  if cur[2] and cur[2] ~= ARGV[4] then return 0 end
elseif cur[1] then
  return 0
end
redis.call('DEL', KEYS[1])
if ARGV[5] == '1' then
  if ARGV[7] == '1' then
    redis.call('HSET', KEYS[1], 'n', ARGV[6], 'v', ARGV[8])
  else
    redis.call('HSET', KEYS[1], 'n', ARGV[6])
  end
end
return 1
"""

# KEYS: hint counter, hint stream, pending counts. ARGV: key, created; then has record, its
# version, has value, value; then the same four for expect. Returns the hint's id.
_ADD_HINT: Final = (
    _LUA_COMMON
    + """
local record = ARGV[3] == '1' and {ARGV[4], ARGV[5] == '1' and ARGV[6]} or false
local expect = ARGV[7] == '1' and {ARGV[8], ARGV[9] == '1' and ARGV[10]} or false
local id = append_hint(KEYS[1], KEYS[2], hint_fields(ARGV[1], record, expect, ARGV[2]))
if expect then redis.call('HINCRBY', KEYS[3], ARGV[1], 1) end
return id
"""
)

# KEYS: hint stream, pending counts, claims. ARGV: the entry's id, force. Returns 1 if this call
# removed it (a claimed entry only with force).
_DROP: Final = """
local entry = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #entry == 0 then return 0 end
if ARGV[2] ~= '1' and redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1])
local fields, key, compensation = entry[1][2], nil, false
for i = 1, #fields, 2 do
  if fields[i] == 'k' then key = fields[i + 1] elseif fields[i] == 'e' then compensation = true end
end
if compensation and redis.call('HINCRBY', KEYS[2], key, -1) <= 0 then
  redis.call('HDEL', KEYS[2], key)
end
return redis.call('XDEL', KEYS[1], ARGV[1])
"""


# KEYS: hint stream, claims. ARGV: the entry's id. Returns 1 if the entry exists (now claimed).
_CLAIM: Final = """
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], 1)
return 1
"""


def _record_args(record: Record | None) -> list[str]:
    """A record as four script arguments: present, version, has a value, value."""
    if record is None:
        return ["0", "", "0", ""]
    return ["1", str(record.version), _flag(not record.deleted), record.value or ""]


def _flag(value: bool) -> str:  # noqa: FBT001  (a Lua argument, not an option)
    return "1" if value else "0"


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


class RedisNode:
    """A storage node on one Redis server (over TCP, TLS or a Unix socket; not a cluster).

    Layout under ``prefix`` (``kv:``): a record is the hash ``kv:r:<key>`` (``n``: version,
    ``v``: value, absent for a tombstone); hints are the stream ``kv:h:q`` with ids from the
    counter ``kv:h:seq``. The client is fender's: connect and read timeouts of ``timeout``
    seconds, no retries, a bounded pool; ``put``, ``restore`` and ``add_hint`` are Lua scripts
    run by EVALSHA.
    """

    def __init__(self, url: str, *, name: str, timeout: float, prefix: str = "kv:") -> None:
        """A node on the server at ``url``; connects on first use.

        Raises:
            fender.errors.ConfigurationError: ``url`` or ``timeout`` is invalid.
        """
        self.name = name
        self.url = redact_url(url)
        self.prefix = prefix
        self._client = cast(
            "redis.Redis", redis_client(url, timeout=timeout, decode_responses=True)
        )
        self._seq = f"{prefix}h:seq"
        self._queue = f"{prefix}h:q"
        self._pending = f"{prefix}h:p"
        self._claims = f"{prefix}h:c"
        self._put = self._client.register_script(_PUT)
        self._restore = self._client.register_script(_RESTORE)
        self._add_hint = self._client.register_script(_ADD_HINT)
        self._drop = self._client.register_script(_DROP)
        self._claim = self._client.register_script(_CLAIM)

    def _key(self, key: str) -> str:
        return f"{self.prefix}r:{key}"

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except (redis.RedisError, OSError) as exc:
            raise NodeUnavailable(self.name, _reason(exc)) from exc

    def get(self, key: str) -> Record | None:
        """The key's record (a tombstone included), or None."""
        with self._guard():
            version, value = cast(
                "list[str | None]", self._client.hmget(self._key(key), ["n", "v"])
            )
        return _record(value, None if version is None else int(version))

    def inspect(self, key: str) -> tuple[Record | None, bool]:
        """The key's record, and whether a compensation for it is queued (MULTI: one snapshot)."""
        with self._guard(), self._client.pipeline(transaction=True) as pipe:
            pipe.hmget(self._key(key), ["n", "v"])
            pipe.hexists(self._pending, key)
            (version, value), pending = pipe.execute()
        return _record(value, None if version is None else int(version)), bool(pending)

    def put(
        self,
        key: str,
        record: Record,
        *,
        hint: bool = False,
        intent: bool = False,
        exclusive: bool = False,
        created_ms: int = 0,
    ) -> PutResult:
        """Store ``record`` if newer; queue its hint or its intent in the same script."""
        args = [
            str(record.version),
            _flag(not record.deleted),
            record.value or "",
            "h" if hint else "i" if intent else "",
            key,
            str(created_ms),
            _flag(exclusive),
        ]
        keys = [self._key(key), self._seq, self._queue, self._pending]
        with self._guard():
            reply = cast("list[Any]", self._put(keys=keys, args=args))
        applied, hint_id, version, value, busy = reply
        previous = _record(value, None if version is None else int(version))
        queued = None if hint_id is None else int(hint_id)
        return PutResult(bool(applied), previous, queued, busy=bool(busy))

    def restore(self, key: str, previous: Record | None, *, expect: Record | None) -> bool:
        """If the key holds exactly ``expect`` (None: nothing), put back ``previous``."""
        args = [*_record_args(expect), *_record_args(previous)]
        with self._guard():
            return bool(self._restore(keys=[self._key(key)], args=args))

    def add_hint(
        self,
        key: str,
        record: Record | None,
        *,
        expect: Record | None = None,
        created_ms: int = 0,
    ) -> int:
        """Queue a hint; returns its id."""
        args = [key, str(created_ms), *_record_args(record), *_record_args(expect)]
        keys = [self._seq, self._queue, self._pending]
        with self._guard():
            return int(cast("int", self._add_hint(keys=keys, args=args)))

    def hints(self, limit: int, *, after: int = 0) -> list[Hint]:
        """The oldest ``limit`` hints with an id above ``after``, in id order."""
        if limit < 1:
            return []
        with self._guard():
            entries = cast(
                "list[tuple[str, dict[str, str]]]",
                self._client.xrange(self._queue, f"{after + 1}-0", "+", count=limit),
            )
        return [_hint(entry_id, fields) for entry_id, fields in entries]

    def drop_hint(self, hint_id: int, *, force: bool = False) -> bool:
        """Remove a hint; True if this call removed it (a claimed one only with ``force``)."""
        keys = [self._queue, self._pending, self._claims]
        with self._guard():
            removed = self._drop(keys=keys, args=[f"{hint_id}-0", _flag(force)])
        return bool(removed)

    def claim_hint(self, hint_id: int) -> bool:
        """Mark a hint as the sync's; False if it is gone."""
        with self._guard():
            return bool(self._claim(keys=[self._queue, self._claims], args=[f"{hint_id}-0"]))

    def hint_count(self) -> int:
        """How many hints are queued."""
        with self._guard():
            return self._client.xlen(self._queue)

    def items(self) -> Iterator[tuple[str, Record]]:
        """Every key and record, in no particular order, a SCAN batch per round trip.

        The first batch is read now, so an unavailable node raises here.
        """
        cursor, first = self._batch(0)
        return self._batches(cursor, first)

    def _batch(self, cursor: int) -> tuple[int, list[tuple[str, Record]]]:
        record_prefix = self._key("")
        with self._guard():
            cursor, keys = cast(
                "tuple[int, list[str]]",
                self._client.scan(cursor, match=_glob_escape(record_prefix) + "*", count=_PAGE),
            )
            with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hmget(key, ["n", "v"])
                rows = cast("list[list[str | None]]", pipe.execute())
        found = [
            (key[len(record_prefix) :], Record(value, int(version)))
            for key, (version, value) in zip(keys, rows, strict=True)
            if version is not None  # removed since SCAN saw it
        ]
        return cursor, found

    def _batches(
        self, cursor: int, batch: list[tuple[str, Record]]
    ) -> Iterator[tuple[str, Record]]:
        seen: set[str] = set()  # SCAN may return a key twice (while the table is resized)
        while True:
            for key, record in batch:
                if key not in seen:
                    seen.add(key)
                    yield key, record
            if cursor == 0:
                return
            cursor, batch = self._batch(cursor)

    def ping(self) -> None:
        """Return when the server answers PING."""
        with self._guard():
            self._client.ping()

    def close(self) -> None:
        """Close the client's connections (a later call opens new ones)."""
        self._client.close()


def _hint(entry_id: str, fields: dict[str, str]) -> Hint:
    version = fields.get("n")
    expect = fields.get("e")
    return Hint(
        int(entry_id.partition("-")[0]),
        fields["k"],
        _record(fields.get("v"), None if version is None else int(version)),
        _record(fields.get("ev"), None if expect is None else int(expect)),
        int(fields.get("t", "0")),
    )
