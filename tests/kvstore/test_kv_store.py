"""The replicated store's rules, over in-memory nodes with an injected clock (no sleeps).

Partitions are ``node.down = True``; a reply lost after the write landed is ``lose_reply``.
"""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from examples.kvstore.records import NodeUnavailable, Record
from examples.kvstore.store import KvStore, Unavailable
from examples.kvstore.versions import (
    TOKEN_CHARS,
    TOKEN_KEYS,
    BadToken,
    VersionClock,
    decode_token,
    encode_token,
    remember,
)
from fender._clock import ManualClock
from fender.resilience import BreakerRegistry

from memnode import MemoryNode


def build(mode: str, *, max_staleness_ms: int = 1000):
    clock = ManualClock()
    local, peer = MemoryNode("local"), MemoryNode("peer")
    store = KvStore(
        mode,  # type: ignore[arg-type]
        local,
        peer,
        max_staleness_ms=max_staleness_ms,
        breakers=BreakerRegistry(clock=clock),
        monotonic=clock,
        wall_ms=lambda: int(clock() * 1000),
        intent_grace=5.0,
    )
    return store, local, peer, clock


def intents_due(store: KvStore, clock: ManualClock) -> None:
    """Past the intents' grace, and the peer's breaker due for a trial: the sync undoes."""
    clock.advance(60)
    store.sync_once()


# --- AP ---------------------------------------------------------------------------------------


def test_ap_write_lands_on_both_nodes_and_leaves_no_hint():
    store, local, peer, _ = build("ap")
    result = store.write("k", "v")
    assert result.replicated
    assert local.data["k"] == peer.data["k"] == Record("v", result.version)
    assert local.queue == {}


def test_ap_write_is_accepted_during_a_partition_and_replayed_in_order_after():
    store, local, peer, _ = build("ap")
    peer.down = True
    versions = [store.write("k", str(i)).version for i in range(5)]
    store.write("other", "x")
    assert not store.read("k").stale  # the bound (1 s) is not passed yet
    assert len(local.queue) == 6
    assert peer.data == {}
    assert not store.sync_once()  # still partitioned
    peer.down = False
    store.breakers["peer"].reset()
    assert store.sync_once()
    assert peer.data == local.data
    assert peer.data["k"] == Record("4", versions[-1])
    assert local.queue == {}
    assert store.queue_length() == 0


def test_ap_replay_never_undoes_a_newer_write():
    store, local, peer, _ = build("ap")
    peer.down = True
    store.write("k", "old")
    peer.down = False
    store.breakers["peer"].reset()
    newer = store.write("k", "new")  # reaches the peer directly, before the replay
    assert store.sync_once()
    assert peer.data["k"] == local.data["k"] == Record("new", newer.version)


def test_ap_staleness_rises_during_a_partition_and_falls_after():
    store, _, peer, clock = build("ap", max_staleness_ms=1000)
    assert store.sync_once()
    assert store.read("k").staleness_ms == 0
    peer.down = True
    for _ in range(3):
        clock.advance(0.6)
        store.sync_once()
    read = store.read("k")
    assert read.staleness_ms == 1800
    assert read.stale
    peer.down = False
    clock.advance(store.breakers["peer"].retry_after() + 1)
    assert store.sync_once()
    read = store.read("k")
    assert read.staleness_ms == 0
    assert not read.stale


def test_ap_reads_from_the_peer_when_the_local_node_is_down():
    store, local, _, _ = build("ap")
    store.write("k", "v")
    local.down = True
    read = store.read("k")
    assert read.node == "peer"
    assert read.record is not None
    assert read.record.value == "v"


def test_ap_refuses_a_write_the_local_node_cannot_hold():
    store, local, peer, _ = build("ap")
    local.down = True
    with pytest.raises(Unavailable) as caught:
        store.write("k", "v")
    assert caught.value.reason == "local_unreachable"
    assert peer.data == {}


def test_ap_opens_the_peer_breaker_and_stops_waiting_on_the_peer():
    store, _, peer, _ = build("ap")
    peer.down = True
    for i in range(10):
        store.write(f"k{i}", "v")
    calls = peer.calls
    store.write("after", "v")
    assert store.breakers["peer"].state.value == "open"
    assert peer.calls == calls  # not even tried


# --- CP ---------------------------------------------------------------------------------------


def test_cp_write_needs_both_nodes():
    store, local, peer, _ = build("cp")
    result = store.write("k", "v")
    assert result.replicated
    assert local.data["k"] == peer.data["k"]


def test_cp_write_refused_when_the_peer_is_down_leaves_nothing_behind():
    store, local, peer, _ = build("cp")
    store.write("k", "before")
    peer.down = True
    with pytest.raises(Unavailable) as caught:
        store.write("k", "after")
    assert caught.value.reason == "peer_unreachable"
    assert local.data["k"].value == "before"  # rolled back
    with pytest.raises(Unavailable):
        store.write("new", "x")
    assert "new" not in local.data  # taken back exactly, while its intent was held
    assert local.queue == {}


def test_cp_write_whose_reply_was_lost_is_undone_on_the_peer_when_it_falls_due():
    store, local, peer, clock = build("cp")
    store.write("k", "before")
    peer.lose_reply = True  # the peer applies the write, the reply is lost
    with pytest.raises(Unavailable):
        store.write("k", "lost")
    assert peer.data["k"].value == "lost"
    assert local.data["k"].value == "before"
    peer.lose_reply = False
    store.breakers["peer"].reset()
    # Pending: neither served nor repaired back into the local node.
    with pytest.raises(Unavailable) as caught:
        store.read("k")
    assert caught.value.reason == "not_current"
    assert local.data["k"].value == "before"
    store.sync_once()  # not due yet: a write in flight looks the same
    assert peer.data["k"].value == "lost"
    intents_due(store, clock)
    assert peer.data["k"].value == "before"
    read = store.read("k")
    assert read.record is not None
    assert read.record.value == "before"


def test_cp_compensation_keeps_a_newer_write():
    store, local, peer, clock = build("cp")
    peer.lose_reply = True
    with pytest.raises(Unavailable):
        store.write("k", "lost")
    peer.lose_reply = False
    store.breakers["peer"].reset()
    # Another instance writes k on both nodes before the compensation runs: it must stay.
    newer = Record("newer", store.versions.next())
    local.put("k", newer)
    peer.put("k", newer)
    intents_due(store, clock)
    assert peer.data["k"] == local.data["k"] == newer
    assert local.queue == {}


def test_cp_undo_spares_another_instance_record_of_the_same_version():
    store, local, peer, clock = build("cp")
    peer.lose_reply = True
    with pytest.raises(Unavailable):
        store.write("k", "a")
    peer.lose_reply = False
    store.breakers["peer"].reset()
    (intent,) = peer.queue.values()  # the peer's own, queued with the put that landed
    assert intent.expect is not None
    theirs = Record("z", intent.expect.version)  # same millisecond, same counter, elsewhere
    local.data["k"] = peer.data["k"] = theirs
    intents_due(store, clock)
    assert local.data["k"] == peer.data["k"] == theirs


def test_cp_write_in_flight_is_not_served_to_a_concurrent_reader():
    store, local, peer, _ = build("cp")
    store.write("k", "old")
    entered, release = threading.Event(), threading.Event()
    real_put = peer.put

    def slow_put(*args, **kwargs):
        entered.set()
        release.wait(10)
        return real_put(*args, **kwargs)

    peer.put = slow_put  # type: ignore[method-assign]
    writer = threading.Thread(target=store.write, args=("k", "new"))
    writer.start()
    try:
        assert entered.wait(10)
        with pytest.raises(Unavailable) as caught:
            store.read("k")  # the local node holds "new", unconfirmed
        assert caught.value.reason == "not_current"
    finally:
        release.set()
        writer.join(10)
    peer.put = real_put  # type: ignore[method-assign]
    assert store.read("k").record == local.data["k"] == peer.data["k"]
    assert local.data["k"].value == "new"


def test_cp_write_that_outlives_its_grace_is_undone_not_acknowledged():
    store, local, peer, clock = build("cp")
    store.write("k", "old")
    real_put = peer.put

    def stalled_put(*args, **kwargs):
        # The writer stalls past the grace; meanwhile the sync claims the intent and undoes.
        clock.advance(60)
        store.sync_once()
        return real_put(*args, **kwargs)

    peer.put = stalled_put  # type: ignore[method-assign]
    with pytest.raises(Unavailable) as caught:
        store.write("k", "late")
    peer.put = real_put  # type: ignore[method-assign]
    assert caught.value.reason == "write_undone"
    intents_due(store, clock)  # what the late put left on the peer is undone too
    assert local.data["k"].value == peer.data["k"].value == "old"


def test_cp_write_finding_a_newer_record_is_retried_above_it():
    store, local, peer, _ = build("cp")
    ahead = Record("from a clock ahead", store.versions.next() + 10_000)
    local.put("k", ahead)
    peer.put("k", ahead)
    result = store.write("k", "mine")
    assert result.version > ahead.version
    assert local.data["k"] == peer.data["k"] == Record("mine", result.version)


def test_cp_write_the_peer_holds_newer_for_is_undone_here_and_retried():
    store, local, peer, _ = build("cp")
    ahead = Record("peer only", store.versions.next() + 10_000)
    peer.put("k", ahead)  # e.g. an AP instance's write, not replicated yet
    result = store.write("k", "mine")
    assert result.version > ahead.version
    assert local.data["k"] == peer.data["k"] == Record("mine", result.version)
    assert local.queue == {}


def test_ap_write_finding_a_newer_record_is_stored_above_it():
    store, local, _, _ = build("ap")
    ahead = Record("ahead", store.versions.next() + 10_000)
    local.put("k", ahead)
    result = store.write("k", "mine")
    assert result.version > ahead.version
    assert local.data["k"].value == "mine"


def test_cp_read_refused_while_the_peer_is_unreachable():
    store, _, peer, _ = build("cp")
    store.write("k", "v")
    peer.down = True
    with pytest.raises(Unavailable) as caught:
        store.read("k")
    assert caught.value.reason in {"not_current", "peer_unreachable"}


def test_cp_read_returns_the_newer_record_and_repairs_the_other_node():
    store, local, peer, _ = build("cp")
    store.write("k", "v1")
    newer = Record("v2", store.versions.next())
    peer.put("k", newer)  # written by another instance whose ack we saw
    read = store.read("k")
    assert read.record == newer
    assert read.node == "peer"
    assert local.data["k"] == newer


def test_deletes_are_tombstones_that_replicate():
    store, _local, peer, _ = build("ap")
    store.write("k", "v")
    peer.down = True
    store.delete("k")
    assert not store.read("k").found
    peer.down = False
    store.breakers["peer"].reset()
    store.sync_once()
    assert peer.data["k"].deleted


# --- read your writes -------------------------------------------------------------------------


def test_read_your_writes_served_from_the_node_that_has_the_version():
    store, local, _peer, _ = build("ap")
    version = store.write("k", "v").version
    # The local node lost it (restored from an old backup): the peer has it.
    del local.data["k"]
    read = store.read("k", at_least=version)
    assert read.node == "peer"
    assert read.record is not None
    assert read.record.version == version


def test_read_your_writes_refused_when_no_node_has_the_version():
    store, local, peer, _ = build("ap")
    version = store.write("k", "v").version
    del local.data["k"]
    peer.down = True
    with pytest.raises(Unavailable) as caught:
        store.read("k", at_least=version)
    assert caught.value.reason == "version_not_available"
    assert store.read("k").record is None  # without the token it answers, from what it has


def test_versions_grow_and_stay_ahead_of_what_was_observed():
    clock = VersionClock(wall_ms=lambda: 1_700_000_000_000)
    first, second = clock.next(), clock.next()
    assert second == first + 1
    clock.observe(second + 1000)
    assert clock.next() == second + 1001
    assert clock.next() < 2**53


def test_versions_are_unique_across_threads():
    clock = VersionClock()
    seen: list[int] = []

    def take():
        seen.extend(clock.next() for _ in range(1000))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 4000


@given(
    st.dictionaries(st.from_regex(r"[A-Za-z0-9._:-]{1,20}", fullmatch=True), st.integers(1, 2**53))
)
def test_tokens_round_trip(versions):
    kept = dict(sorted(versions.items(), key=lambda kv: kv[1])[-TOKEN_KEYS:])
    assert decode_token(encode_token(kept)) == kept


@pytest.mark.parametrize(
    "token", ["%%%", "a" * 5000, encode_token({}).join(["", "x"]), "a2V5", "a2V5PXg"]
)
def test_malformed_tokens_are_refused_with_a_reason(token):
    with pytest.raises(BadToken):
        decode_token(token)


def test_remember_keeps_the_newest_keys():
    versions: dict[str, int] = {}
    for i in range(TOKEN_KEYS + 5):
        versions = remember(versions, f"k{i}", i + 1)
    assert len(versions) == TOKEN_KEYS
    assert "k0" not in versions
    assert versions[f"k{TOKEN_KEYS + 4}"] == TOKEN_KEYS + 5


def test_sync_thread_replays_without_being_asked():
    store, _, peer, _ = build("ap")
    peer.down = True
    store.write("k", "v")
    peer.down = False
    store.breakers["peer"].reset()
    store.sync_interval = 0.01
    store.start()
    try:
        done = threading.Event()

        def wait():
            while "k" not in peer.data:
                if done.wait(0.01):
                    return
            done.set()

        waiter = threading.Thread(target=wait)
        waiter.start()
        waiter.join(timeout=10)
        assert "k" in peer.data
    finally:
        store.stop()


def test_a_token_of_long_keys_stays_cookie_sized_and_readable():
    versions: dict[str, int] = {}
    for i in range(TOKEN_KEYS + 8):
        versions = remember(versions, f"{i:03d}" + "k" * 125, 1_000 + i)  # 128 characters
    token = encode_token(versions)
    assert len(token) <= TOKEN_CHARS
    assert decode_token(token) == versions
    assert f"{TOKEN_KEYS + 7:03d}" + "k" * 125 in versions  # the newest is kept


def test_cp_write_of_a_key_whose_refused_write_is_pending_is_refused_untouched():
    # Otherwise its intent would undo to the refused write, and bring it back (a chain).
    store, local, peer, clock = build("cp")
    store.write("k", "committed")
    peer.lose_reply = True
    with pytest.raises(Unavailable):
        store.write("k", "refused")
    peer.lose_reply = False
    store.breakers["peer"].reset()
    with pytest.raises(Unavailable) as caught:
        store.write("k", "next")
    assert caught.value.reason == "write_in_progress"
    assert local.data["k"].value == "committed"
    intents_due(store, clock)
    store.write("k", "next")
    assert local.data["k"].value == peer.data["k"].value == "next"


def test_cp_write_meeting_another_writers_pending_key_on_the_peer_is_undone_here():
    store, local, peer, _ = build("cp")
    committed = store.write("k", "committed")
    peer.put("k", Record("theirs", store.versions.next()), intent=True)  # in flight elsewhere
    with pytest.raises(Unavailable) as caught:
        store.write("k", "mine")
    assert caught.value.reason == "write_in_progress"
    # Taken back exactly (never seen: the key was pending here), not forward.
    assert local.data["k"] == Record("committed", committed.version)
    assert local.queue == {}


def test_cp_write_finding_its_very_record_on_the_peer_is_not_acknowledged_as_stored():
    # Two processes can hand out one version; a record the peer already held is not ours.
    store, local, peer, _ = build("cp")
    real_next = store.versions.next
    taken = real_next()
    peer.put("k", Record("same", taken))
    versions = iter([taken])
    store.versions.next = lambda: next(versions, None) or real_next()  # type: ignore[method-assign]
    result = store.write("k", "same")
    assert result.version != taken
    assert local.data["k"] == peer.data["k"] == Record("same", result.version)


def test_an_undo_the_sync_could_not_finish_stays_claimed_for_the_next_pass():
    store, local, peer, clock = build("cp")
    store.write("k", "committed")
    # A writer that died after both puts, before its claims: its intent alone on the local node.
    refused = Record("refused", store.versions.next())
    local.put("k", refused, intent=True, created_ms=0)
    peer.put("k", refused)
    peer.down = True  # the peer fails between the claim and its undo
    store.sync_once()
    (intent,) = local.queue.values()
    assert intent.id in local.claimed
    assert local.drop_hint(intent.id) is False  # its writer could no longer claim it
    assert local.data["k"].value == "committed"
    peer.down = False
    clock.advance(60)
    store.sync_once()
    assert local.queue == {}
    assert local.data["k"] == peer.data["k"]
    assert peer.data["k"].value == "committed"


def test_an_undo_writes_forward_so_stale_repairs_and_late_puts_lose():
    store, local, peer, clock = build("cp")
    committed = store.write("k", "committed")
    peer.lose_reply = True
    with pytest.raises(Unavailable):
        store.write("k", "refused")
    peer.lose_reply = False
    refused = peer.data["k"]
    assert local.data["k"] == Record("committed", committed.version)  # taken back at once
    intents_due(store, clock)  # the peer's own intent undoes it there, forward
    undo = peer.data["k"]
    assert undo == Record("committed", refused.version + 1)
    assert store.read("k").record == undo  # and the read repairs the local node towards it
    assert local.data["k"] == undo
    # A reader's repair from a view taken before the undo (the key held "committed" then):
    assert not peer.restore("k", refused, expect=Record("committed", committed.version))
    # The refused put, retransmitted after the partition healed, lands late:
    assert not peer.put("k", refused).applied
    assert store.read("k").record == undo


def test_cp_writes_of_one_key_from_two_instances_wait_for_each_others_undo():
    clock = ManualClock()
    n1, n2 = MemoryNode("local"), MemoryNode("peer")

    def instance(local, peer):
        local, peer = MemoryNode.alias(local, "local"), MemoryNode.alias(peer, "peer")
        return KvStore(
            "cp",
            local,
            peer,
            max_staleness_ms=1000,
            breakers=BreakerRegistry(clock=clock),
            monotonic=clock,
            wall_ms=lambda: int(clock() * 1000),
        )

    a, b = instance(n1, n2), instance(n2, n1)
    a.write("k", "committed")
    n2.lose_reply = True  # A's put lands on n2, its reply is lost: n2 holds it, pending
    with pytest.raises(Unavailable):
        a.write("k", "refused")
    n2.lose_reply = False
    a.breakers["peer"].reset()
    with pytest.raises(Unavailable) as caught:
        b.write("k", "b's")  # its local node (n2) holds A's refused write: not a base for B
    assert caught.value.reason == "write_in_progress"
    intents_due(b, clock)
    assert n1.data["k"].value == n2.data["k"].value == "committed"
    b.write("k", "b's")
    assert a.read("k").record == b.read("k").record == n1.data["k"] == n2.data["k"]


def test_a_write_undone_after_both_puts_goes_back_to_the_newer_previous_on_both_nodes():
    # The nodes disagreed before it (an AP instance's write reached the peer only): its undo
    # must not bring back the older value, whatever the values' order.
    store, local, peer, clock = build("cp")
    local.put("k", Record("zzz older", 10))
    peer.put("k", Record("aaa newer", 20))
    real_drop = local.drop_hint

    def sync_first(hint_id, *, force=False):
        # The write outlived its grace: the sync marks the local intent before the writer.
        local.claim_hint(hint_id)
        return real_drop(hint_id, force=force)

    local.drop_hint = sync_first  # type: ignore[method-assign]
    with pytest.raises(Unavailable) as caught:
        store.write("k", "mine")
    local.drop_hint = real_drop  # type: ignore[method-assign]
    assert caught.value.reason == "write_undone"
    assert local.data["k"].value == peer.data["k"].value == "aaa newer"
    intents_due(store, clock)
    assert local.data["k"] == peer.data["k"]
    assert peer.data["k"].value == "aaa newer"


def test_a_write_undone_while_the_peer_is_gone_is_undone_there_when_it_returns():
    store, local, peer, clock = build("cp")
    store.write("k", "committed")
    real_drop = peer.drop_hint

    def drop_then_vanish(hint_id, *, force=False):
        dropped = real_drop(hint_id, force=force)  # applied, but the reply never comes
        peer.down = True
        raise NodeUnavailable("peer", f"reply lost after dropping {dropped} (test)")

    peer.drop_hint = drop_then_vanish  # type: ignore[method-assign]
    with pytest.raises(Unavailable) as caught:
        store.write("k", "b")
    peer.drop_hint = real_drop  # type: ignore[method-assign]
    assert caught.value.reason == "write_undone"
    assert peer.data["k"].value == "b"  # no intent of its own left there
    assert local.queue  # so the local one stays, to undo the peer when it returns
    peer.down = False
    intents_due(store, clock)
    assert local.data["k"].value == peer.data["k"].value == "committed"
