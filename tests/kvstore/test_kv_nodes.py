"""The storage node contract, over every kind: the in-memory reference, SQLite and Redis.

The store's unit tests run against ``memnode.MemoryNode``; these tests hold the real nodes to
the same behaviour, so that what the store's tests prove holds with either node.
"""

from __future__ import annotations

import itertools
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from examples.kvstore.nodes import REDIS_SCHEMES, RedisNode, SqliteNode, open_node, sqlite_path
from examples.kvstore.records import Hint, Node, NodeUnavailable, PutResult, Record, newer

from memnode import MemoryNode
from servers import redis_io

# Generous: these tests are about what nodes store, and a busy CI machine must not turn a slow
# call into a timeout. The tests of dead nodes set their own short timeouts.
TIMEOUT = 10.0
KINDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]
_prefixes = itertools.count()


def make_node(kind: str, request: pytest.FixtureRequest, where: Path, name: str = "local") -> Node:
    if kind == "memory":
        return MemoryNode(name)
    if kind == "sqlite":
        return SqliteNode(where / f"{name}-{next(_prefixes)}.db", name=name, timeout=TIMEOUT)
    url = request.getfixturevalue("redis_url")
    return RedisNode(url, name=name, timeout=TIMEOUT, prefix=f"t{next(_prefixes)}:")


@pytest.fixture(params=KINDS)
def node(request, tmp_path) -> Iterator[Node]:
    made = make_node(request.param, request, tmp_path)
    yield made
    made.close()


def state(node: Node) -> dict[str, Record]:
    return dict(node.items())


# -- last writer wins ----------------------------------------------------------------------------


def test_get_of_an_unknown_key_is_none(node):
    assert node.get("nothing") is None


def test_put_stores_and_reports_what_it_replaced(node):
    assert node.put("a", Record("one", 10)) == PutResult(applied=True, previous=None)
    assert node.put("a", Record("two", 11)) == PutResult(True, Record("one", 10))
    assert node.get("a") == Record("two", 11)


def test_an_older_version_loses(node):
    node.put("a", Record("new", 20))
    assert node.put("a", Record("old", 19)) == PutResult(False, Record("new", 20))
    assert node.get("a") == Record("new", 20)


@pytest.mark.parametrize(
    ("first", "second", "winner"),
    [
        pytest.param("apple", "banana", "banana", id="greater-value-wins"),
        pytest.param("banana", "apple", "banana", id="smaller-value-loses"),
        pytest.param("same", "same", "same", id="identical"),
        pytest.param("ab", "abc", "abc", id="prefix-loses"),
        pytest.param("Z", "a", "a", id="code-point-not-locale"),
        pytest.param("é", "z", "é", id="non-ascii-above-ascii"),
        pytest.param("\U0001f600", "\uffff", "\U0001f600", id="astral-above-bmp"),
        pytest.param(None, "", "", id="empty-value-above-tombstone"),
        pytest.param("", None, "", id="tombstone-below-empty-value"),
        pytest.param(None, "x", "x", id="value-above-tombstone"),
        pytest.param(None, None, None, id="two-tombstones"),
    ],
)
def test_equal_versions_settle_as_record_order(node, first, second, winner):
    node.put("k", Record(first, 7))
    result = node.put("k", Record(second, 7))
    assert result.applied == newer(Record(second, 7), Record(first, 7))
    assert node.get("k") == Record(winner, 7)


def test_a_tombstone_is_kept_with_its_version(node):
    node.put("a", Record("v", 5))
    assert node.put("a", Record(None, 6)) == PutResult(True, Record("v", 5))
    assert node.get("a") == Record(None, 6)
    assert node.get("a").deleted
    assert not node.put("a", Record("late", 5)).applied  # an older write cannot resurrect it
    assert node.put("a", Record("again", 7)) == PutResult(True, Record(None, 6))


def test_versions_near_two_to_the_53_compare_exactly(node):
    top = 2**53 - 1
    node.put("a", Record("x", top - 1))
    assert node.put("a", Record("y", top)).applied
    assert not node.put("a", Record("z", top - 1)).applied
    assert node.get("a") == Record("y", top)


def test_keys_and_values_keep_every_character(node):
    key, value = "spaces and : / * ? [x] \\ é \U0001f600", "line\nbreak \x00 nul \t tab" * 50
    node.put(key, Record(value, 3))
    assert node.get(key) == Record(value, 3)
    assert node.get("spaces and") is None
    assert state(node) == {key: Record(value, 3)}


# -- restore (compensation) ----------------------------------------------------------------------


def test_restore_puts_back_the_previous_record_when_the_record_matches(node):
    node.put("a", Record("old", 1))
    node.put("a", Record("new", 2))
    assert node.restore("a", Record("old", 1), expect=Record("new", 2)) is True
    assert node.get("a") == Record("old", 1)


def test_restore_puts_back_a_tombstone(node):
    node.put("a", Record("new", 2))
    assert node.restore("a", Record(None, 1), expect=Record("new", 2))
    assert node.get("a") == Record(None, 1)


def test_restore_with_no_previous_removes_the_key(node):
    node.put("a", Record("new", 2))
    assert node.restore("a", None, expect=Record("new", 2))
    assert node.get("a") is None
    assert state(node) == {}


def test_restore_matches_a_tombstone(node):
    node.put("a", Record(None, 4))
    assert node.restore("a", Record("back", 3), expect=Record(None, 4))
    assert node.get("a") == Record("back", 3)


def test_restore_does_nothing_when_the_record_moved_on(node):
    node.put("a", Record("newer", 3))
    assert node.restore("a", Record("old", 1), expect=Record("new", 2)) is False
    assert node.get("a") == Record("newer", 3)


@pytest.mark.parametrize(
    "held",
    [Record("z", 2), Record(None, 2), Record("", 2)],
    ids=["other-value", "tombstone", "empty-value"],
)
def test_restore_needs_the_whole_record_not_only_its_version(node, held):
    # Two instances can hand out one version: undoing one's write must not erase the other's.
    node.put("a", held)
    assert node.restore("a", None, expect=Record("y", 2)) is False
    assert node.get("a") == held


def test_restore_expecting_nothing_sets_an_absent_key_only(node):
    assert node.restore("a", Record("v", 1), expect=None) is True
    assert node.get("a") == Record("v", 1)
    assert node.restore("a", Record("w", 2), expect=None) is False
    assert node.get("a") == Record("v", 1)


def test_restore_does_nothing_on_an_unknown_key(node):
    assert node.restore("a", Record("old", 1), expect=Record("new", 2)) is False
    assert node.restore("a", None, expect=Record("new", 2)) is False
    assert node.get("a") is None


# -- intents and pending keys --------------------------------------------------------------------


def test_put_with_intent_queues_the_undo_and_marks_the_key_pending(node):
    node.put("a", Record("old", 1))
    assert node.inspect("a") == (Record("old", 1), False)
    result = node.put("a", Record("new", 2), intent=True, created_ms=1234)
    assert result.applied
    assert result.hint_id is not None
    assert node.hints(10) == [Hint(result.hint_id, "a", Record("old", 1), Record("new", 2), 1234)]
    assert node.inspect("a") == (Record("new", 2), True)
    assert node.inspect("b") == (None, False)  # other keys are not pending
    assert node.drop_hint(result.hint_id) is True
    assert node.inspect("a") == (Record("new", 2), False)


def test_an_intent_on_a_new_key_undoes_to_nothing(node):
    result = node.put("a", Record("new", 2), intent=True)
    (hint,) = node.hints(10)
    assert hint.record is None
    assert hint.expect == Record("new", 2)
    assert hint.compensation
    assert node.restore("a", hint.record, expect=hint.expect)
    assert node.get("a") is None
    assert node.drop_hint(result.hint_id)


def test_pending_counts_every_compensation_of_a_key(node):
    first = node.put("a", Record("v1", 1), intent=True).hint_id
    second = node.add_hint("a", None, expect=Record("v1", 1))
    replication = node.add_hint("a", Record("v1", 1))
    node.drop_hint(first)
    assert node.inspect("a")[1] is True
    node.drop_hint(replication)
    assert node.inspect("a")[1] is True
    node.drop_hint(second)
    assert node.inspect("a")[1] is False


def test_an_exclusive_put_waits_for_the_keys_compensations(node):
    node.put("a", Record("v1", 1), intent=True)
    busy = node.put("a", Record("v2", 2), exclusive=True)
    assert busy.busy
    assert not busy.applied
    assert busy.previous == Record("v1", 1)
    assert node.get("a") == Record("v1", 1)
    assert node.put("a", Record("v3", 3), intent=True).busy  # an intent is exclusive too
    assert not node.put("b", Record("v", 1), exclusive=True).busy  # other keys are free
    assert node.put("a", Record("v4", 4)).applied  # a plain put (a replication) is not held


def test_a_claimed_hint_is_dropped_only_with_force(node):
    hint_id = node.add_hint("a", None, expect=Record("v", 1))
    assert node.claim_hint(hint_id) is True
    assert node.claim_hint(hint_id) is True  # again: a sync that died half-way is taken over
    assert node.drop_hint(hint_id) is False
    assert node.inspect("a")[1] is True
    assert node.drop_hint(hint_id, force=True) is True
    assert node.inspect("a")[1] is False
    assert node.claim_hint(hint_id) is False


def test_a_hint_is_claimed_once(node):
    hint_id = node.add_hint("a", None, expect=Record("v", 1))
    assert node.drop_hint(hint_id) is True
    assert node.drop_hint(hint_id) is False
    assert node.inspect("a")[1] is False


def test_hints_after_an_id(node):
    ids = [node.add_hint(k, Record(k, 1)) for k in "abcd"]
    assert [h.id for h in node.hints(10, after=ids[1])] == ids[2:]
    assert [h.id for h in node.hints(1, after=ids[0])] == [ids[1]]
    assert node.hints(10, after=ids[-1]) == []


# -- hints ---------------------------------------------------------------------------------------


def test_hints_come_back_in_id_order_with_what_was_queued(node):
    first = node.add_hint("a", Record("v", 1))
    second = node.add_hint("b", Record(None, 2))
    third = node.add_hint("c", None, expect=Record("v", 5), created_ms=77)
    fourth = node.add_hint("d", Record("prev", 3), expect=Record(None, 4))
    assert first < second < third < fourth
    assert node.hints(10) == [
        Hint(first, "a", Record("v", 1)),
        Hint(second, "b", Record(None, 2)),
        Hint(third, "c", None, Record("v", 5), 77),
        Hint(fourth, "d", Record("prev", 3), Record(None, 4)),
    ]
    assert node.hint_count() == 4
    assert [h.id for h in node.hints(2)] == [first, second]
    assert node.hints(0) == []


def test_put_with_hint_queues_it_applied_or_not(node):
    applied = node.put("a", Record("new", 5), hint=True)
    stale = node.put("a", Record("old", 4), hint=True)
    plain = node.put("a", Record("newer", 6))
    assert applied.applied
    assert not stale.applied
    assert plain.hint_id is None
    assert applied.hint_id is not None
    assert stale.hint_id is not None
    assert applied.hint_id < stale.hint_id
    assert node.hints(10) == [
        Hint(applied.hint_id, "a", Record("new", 5)),
        Hint(stale.hint_id, "a", Record("old", 4)),
    ]


def test_drop_hint_is_idempotent_and_touches_only_its_hint(node):
    ids = [node.add_hint(k, Record(k, 1)) for k in "abc"]
    node.drop_hint(ids[1])
    node.drop_hint(ids[1])  # a second replayer's late drop
    node.drop_hint(10**9)  # never queued
    assert [h.id for h in node.hints(10)] == [ids[0], ids[2]]
    assert node.hint_count() == 2


def test_hint_ids_keep_growing_after_the_newest_is_dropped(node):
    first = node.add_hint("a", Record("v", 1))
    node.drop_hint(first)
    second = node.add_hint("b", Record("v", 1))
    assert second > first
    node.drop_hint(first)  # a late drop of the old id leaves the new hint alone
    assert [h.id for h in node.hints(10)] == [second]


def test_hints_are_not_records(node):
    node.add_hint("a", Record("v", 1))
    assert node.get("a") is None
    assert state(node) == {}


# -- items, ping ---------------------------------------------------------------------------------


def test_items_lists_every_record_and_tombstone(node):
    expected = {f"key-{i:04d}": Record(f"v{i}", i + 1) for i in range(1203)}  # > 2 pages
    expected["gone"] = Record(None, 9)
    for key, record in expected.items():
        node.put(key, record)
    listed = list(node.items())
    assert len(listed) == len(expected)
    assert dict(listed) == expected


def test_ping_answers(node):
    node.ping()


# -- put and hint together -----------------------------------------------------------------------


def _break_sqlite_hints(node: SqliteNode) -> None:
    with sqlite3.connect(node.path) as conn:
        conn.execute(
            "CREATE TRIGGER no_hints BEFORE INSERT ON hints BEGIN SELECT RAISE(ABORT, 'full'); END"
        )
    conn.close()


@pytest.mark.parametrize("kind", [p for p in KINDS if p.id != "memory"])
def test_a_put_whose_hint_fails_stores_nothing(kind, request, tmp_path):
    node = make_node(kind, request, tmp_path)
    try:
        node.put("a", Record("old", 1), hint=True)
        if isinstance(node, SqliteNode):
            _break_sqlite_hints(node)
        else:
            node._client.set(node._queue, "not a stream")
        with pytest.raises(NodeUnavailable) as caught:
            node.put("a", Record("new", 2), hint=True)
        assert caught.value.node == "local"
        assert node.get("a") == Record("old", 1)
        assert node.put("a", Record("new", 2)).applied  # without a hint it goes through
    finally:
        node.close()


@pytest.mark.redis
def test_redis_hint_ids_catch_up_with_the_queue_when_the_counter_falls_behind(redis_url):
    node = RedisNode(redis_url, name="local", timeout=TIMEOUT)
    try:
        ids = [node.add_hint(k, Record(k, 1)) for k in "abc"]
        node._client.delete(node._seq)  # e.g. an older counter restored by hand
        later = node.put("d", Record("d", 1), hint=True).hint_id
        assert later is not None
        assert later > ids[-1]
        assert [h.id for h in node.hints(10)] == [*ids, later]
        assert node.add_hint("e", None, expect=Record("e", 1)) == later + 1
    finally:
        node.close()


@pytest.mark.redis
def test_redis_node_uses_one_round_trip_per_call(redis_url):
    node = RedisNode(redis_url, name="local", timeout=TIMEOUT)
    try:
        node.ping()  # connect (and its handshake) first
        node.put("warm", Record("x", 1), hint=True)  # and load the scripts
        node.restore("warm", None, expect=Record("x", 0))
        node.add_hint("warm", None)
        node.drop_hint(10**6)
        calls: list[Callable[[], object]] = [
            lambda: node.get("a"),
            lambda: node.put("a", Record("v", 1), hint=True),
            lambda: node.restore("a", None, expect=Record("v", 1)),
            lambda: node.inspect("a"),
            lambda: node.put("b", Record("v", 1), intent=True),
            lambda: node.add_hint("a", Record("v", 1)),
            lambda: node.hints(10),
            lambda: node.drop_hint(1),
            lambda: node.claim_hint(1),
            node.hint_count,
            node.ping,
        ]
        for call in calls:
            with redis_io() as io:
                call()
            assert io == {"connect": 0, "send": 1}
    finally:
        node.close()


# -- an unavailable node -------------------------------------------------------------------------

CALLS: list[tuple[str, Callable[[Node], object]]] = [
    ("get", lambda n: n.get("a")),
    ("put", lambda n: n.put("a", Record("v", 1), hint=True)),
    ("restore", lambda n: n.restore("a", None, expect=Record("v", 1))),
    ("inspect", lambda n: n.inspect("a")),
    ("add_hint", lambda n: n.add_hint("a", Record("v", 1))),
    ("hints", lambda n: n.hints(10)),
    ("drop_hint", lambda n: n.drop_hint(1)),
    ("claim_hint", lambda n: n.claim_hint(1)),
    ("hint_count", lambda n: n.hint_count()),
    ("items", lambda n: n.items()),
    ("ping", lambda n: n.ping()),
]


def _every_call_fails(node: Node) -> None:
    for what, call in CALLS:
        with pytest.raises(NodeUnavailable) as caught:
            call(node)
        assert caught.value.node == node.name, what


def test_a_partitioned_memory_node_fails_every_call():
    node = MemoryNode("peer")
    node.down = True
    _every_call_fails(node)


def test_a_sqlite_node_under_a_file_is_unavailable_not_a_crash(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    node = SqliteNode(tmp_path / "file" / "kv.db", name="peer", timeout=TIMEOUT)
    _every_call_fails(node)
    node.close()


def test_a_corrupt_sqlite_file_is_unavailable(tmp_path):
    path = tmp_path / "kv.db"
    path.write_bytes(b"this is not a SQLite database, " * 200)
    node = SqliteNode(path, name="peer", timeout=TIMEOUT)
    _every_call_fails(node)
    node.close()


def test_a_sqlite_file_corrupted_while_in_use_is_unavailable(tmp_path):
    path = tmp_path / "kv.db"
    node = SqliteNode(path, name="peer", timeout=TIMEOUT)
    node.put("a", Record("v", 1))
    node.close()  # drop the cached pages with the connections
    path.write_bytes(b"\x00garbage" * 1000)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    _every_call_fails(node)
    node.close()


def test_a_sqlite_file_locked_by_another_process_is_unavailable_after_the_busy_timeout(tmp_path):
    path = tmp_path / "kv.db"
    node = SqliteNode(path, name="peer", timeout=0.05)
    node.put("a", Record("v", 1))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(NodeUnavailable, match="locked"):
            node.put("a", Record("w", 2))
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert node.put("a", Record("w", 2)).applied  # the lock gone, the node serves again
    node.close()


@pytest.mark.redis
@pytest.mark.timeout(60)  # a hang fails here instead of stalling the run
def test_a_paused_redis_fails_every_call_within_its_timeout_then_recovers(redis_server):
    node = RedisNode(redis_server.url, name="peer", timeout=0.2)
    try:
        node.put("a", Record("v", 1), hint=True)
        redis_server.pause()
        try:
            with redis_io() as io:
                _every_call_fails(node)
            # one attempt per call: no retry inside the node
            assert io["send"] <= len(CALLS)
        finally:
            redis_server.resume()
        assert node.get("a") == Record("v", 1)
    finally:
        node.close()


@pytest.mark.redis
@pytest.mark.timeout(60)
def test_a_killed_redis_fails_every_call_then_a_restarted_one_serves(redis_server):
    node = RedisNode(redis_server.url, name="peer", timeout=TIMEOUT)
    try:
        node.put("a", Record("v", 1), hint=True)
        redis_server.kill()
        _every_call_fails(node)
        redis_server.restart()  # empty: the test server keeps nothing on disk
        assert node.get("a") is None
        assert node.put("a", Record("v", 2), hint=True).applied  # scripts loaded again
        assert node.hint_count() == 1
    finally:
        node.close()


# -- URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/kv-local.db", Path("data/kv-local.db")),
        ("sqlite:////var/lib/kv.db", Path("/var/lib/kv.db")),
        ("SQLITE:///kv.db", Path("kv.db")),
    ],
)
def test_sqlite_urls_follow_sqlalchemy(url, path):
    assert sqlite_path(url) == path
    node = open_node(url, name="local", timeout=TIMEOUT)
    assert isinstance(node, SqliteNode)
    assert node.path == path
    assert open_node(node.url, name="local", timeout=TIMEOUT).path == path


@pytest.mark.parametrize("scheme", REDIS_SCHEMES)
def test_redis_urls_open_a_redis_node_with_the_password_masked(scheme):
    where = "/run/redis.sock" if scheme == "unix" else "cache:6379/0"
    node = open_node(f"{scheme}://:hunter2@{where}", name="peer", timeout=TIMEOUT)
    try:
        assert isinstance(node, RedisNode)
        assert "hunter2" not in node.url
        assert node.name == "peer"
    finally:
        node.close()


@pytest.mark.parametrize(
    "url",
    ["postgresql://db/kv", "memory://x", "kv.db", "sqlite://", "sqlite:///", "sqlite:///:memory:",
     "sqlite:///kv.db?mode=ro", "redis+sentinel://s:26379/main", "http://:hunter2@x/"],
)  # fmt: skip
def test_other_urls_are_refused_naming_the_accepted_schemes(url):
    with pytest.raises(ValueError, match="sqlite:///") as caught:
        open_node(url, name="local", timeout=TIMEOUT)
    assert "hunter2" not in str(caught.value)


# -- convergence ---------------------------------------------------------------------------------

records = st.builds(
    Record,
    st.none() | st.text(st.characters(exclude_categories=("Cs",)), max_size=4),
    st.integers(1, 4) | st.just(2**53 - 1),  # few versions: ties are the point
)
puts = st.lists(st.tuples(st.sampled_from(["a", "b", ""]), records), max_size=12)


@pytest.mark.redis
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=puts, data=st.data())
def test_any_order_of_the_same_puts_converges_to_one_state_on_every_node(redis_url, writes, data):
    expected: dict[str, Record] = {}
    for key, record in writes:
        if newer(record, expected.get(key)):
            expected[key] = record
    with tempfile.TemporaryDirectory() as where:
        nodes: list[Node] = []
        try:
            for kind in ("memory", "sqlite", "redis"):
                for _ in range(2):
                    if kind == "memory":
                        nodes.append(MemoryNode("n"))
                    elif kind == "sqlite":
                        path = Path(where) / f"{len(nodes)}.db"
                        nodes.append(SqliteNode(path, name="n", timeout=TIMEOUT))
                    else:
                        prefix = f"p{next(_prefixes)}:"
                        nodes.append(RedisNode(redis_url, name="n", timeout=TIMEOUT, prefix=prefix))
            for node in nodes:
                for key, record in data.draw(st.permutations(writes)):
                    node.put(key, record)
                assert state(node) == expected, node.url
        finally:
            for node in nodes:
                node.close()


# -- many threads, many processes ----------------------------------------------------------------


@pytest.mark.parametrize("kind", [p for p in KINDS if p.id != "memory"])
def test_concurrent_writers_sharing_a_node_or_its_file_lose_nothing(kind, request, tmp_path):
    # Threads of one worker share a node; gunicorn's workers each open their own on the same
    # file or server (here: two nodes, as two processes would).
    first = make_node(kind, request, tmp_path)
    if isinstance(first, SqliteNode):
        first.timeout = 10.0  # correctness under contention, not the busy timeout, is tested
        second: Node = SqliteNode(first.path, name="local", timeout=10.0)
    else:
        assert isinstance(first, RedisNode)
        second = RedisNode(request.getfixturevalue("redis_url"), name="local", timeout=10.0,
                           prefix=first.prefix)  # fmt: skip
    writes = [(f"k{i % 7}", Record(f"v{i}", i % 13)) for i in range(120)]
    results: list[PutResult] = []

    def work(node: Node, mine: list[tuple[str, Record]]) -> None:
        results.extend(node.put(key, record, hint=True) for key, record in mine)

    threads = [
        threading.Thread(target=work, args=(node, writes[i::4]))
        for i, node in enumerate([first, second, first, second])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected: dict[str, Record] = {}
    for key, record in writes:
        if newer(record, expected.get(key)):
            expected[key] = record
    try:
        assert state(first) == expected
        ids = [result.hint_id for result in results]
        assert len(set(ids)) == len(writes)
        assert sorted(h.id for h in first.hints(1000)) == sorted(ids)
    finally:
        first.close()
        second.close()
