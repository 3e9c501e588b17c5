from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fender._clock import ManualClock
from fender.errors import ConfigurationError
from fender.stores import MemoryTier, TierConfig, TierEntry


def tier(clock=None, **config):
    return MemoryTier(TierConfig(**config), clock=clock or ManualClock())


def test_ttl_fresh_then_stale_then_gone():
    clock = ManualClock()
    t = tier(clock, max_stale=10.0)
    assert t.set("a", b"1", ttl=5.0)
    assert t.get("a") == b"1"
    assert t.lookup("a") == TierEntry(b"1", False, 0.0)
    clock.advance(5.0)
    assert t.get("a") is None
    assert "a" not in t
    entry = t.lookup("a")
    assert entry is not None
    assert entry.stale
    assert entry.stale_age == 0.0
    clock.advance(9.0)
    assert t.lookup("a") == TierEntry(b"1", True, 9.0)
    clock.advance(1.0)
    assert t.lookup("a") is None
    assert len(t) == 0
    assert t.nbytes == 0


def test_no_staleness_drops_at_expiry():
    clock = ManualClock()
    t = tier(clock, max_stale=0.0)
    t.set("a", b"1", ttl=1.0)
    clock.advance(1.0)
    assert t.lookup("a") is None


def test_no_ttl_never_expires():
    clock = ManualClock()
    t = tier(clock)
    t.set("a", b"1")
    clock.advance(1e9)
    assert t.get("a") == b"1"
    assert t.peek("a") == (b"1", None)


def test_lru_evicts_least_recently_used_by_count():
    t = tier(max_entries=3)
    for key in "abc":
        t.set(key, b"x")
    assert t.get("a") == b"x"  # a is now the most recent
    t.set("d", b"x")
    assert t.keys() == ["c", "a", "d"]
    assert "b" not in t
    assert t.evictions == 1


def test_bytes_bound_counts_keys_and_values():
    t = tier(max_bytes=10)
    t.set("a", b"1234")  # 5 bytes
    t.set("b", b"1234")  # 10 bytes
    assert t.nbytes == 10
    t.set("c", b"12")  # 13 > 10: a goes
    assert t.keys() == ["b", "c"]
    assert t.nbytes == 8
    assert not t.set("big", b"x" * 20)
    assert t.keys() == ["b", "c"]


def test_oversized_write_drops_the_old_value():
    t = tier(max_bytes=10)
    t.set("a", b"old")
    assert not t.set("a", b"x" * 50)
    assert t.get("a") is None


def test_peek_does_not_touch_lru_order():
    clock = ManualClock()
    t = tier(clock, max_entries=2)
    t.set("a", b"1", ttl=10.0)
    t.set("b", b"2")
    clock.advance(4.0)
    assert t.peek("a") == (b"1", 6.0)
    t.set("c", b"3")
    assert "a" not in t


def test_delete_and_prefix():
    t = tier()
    for key in ("user:1", "user:2", "users", "other"):
        t.set(key, b"x")
    assert t.delete("other")
    assert not t.delete("other")
    assert t.delete_prefix("user:") == 2
    assert t.keys() == ["users"]


def test_incr_like_redis():
    clock = ManualClock()
    t = tier(clock)
    assert t.incr("n") == 1
    assert t.incr("n", 5) == 6
    assert t.get("n") == b"6"
    assert t.incr("w", ttl=2.0) == 1
    clock.advance(1.0)
    assert t.incr("w", ttl=100.0) == 2  # the existing expiry is kept
    clock.advance(1.0)
    assert t.incr("w") == 1  # expired: starts over
    t.set("s", b"abc")
    with pytest.raises(ValueError, match="not an integer"):
        t.incr("s")


def test_bad_ttl_and_config():
    t = tier()
    with pytest.raises(ValueError, match="ttl"):
        t.set("a", b"1", ttl=0)
    for field, value in (("max_entries", 0), ("max_bytes", True), ("max_stale", -1.0)):
        with pytest.raises(ConfigurationError, match=field):
            TierConfig(**{field: value})


def test_threads_keep_the_accounting_exact():
    t = MemoryTier(TierConfig(max_entries=50, max_bytes=2000))

    def work(n):
        for i in range(500):
            t.set(f"{n}:{i % 70}", b"v" * (i % 13))
            t.incr(f"c{n}")
            t.lookup(f"{n}:{i % 30}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(t) <= 50
    assert t.nbytes == sum(len(k.encode()) + len(t.peek(k)[0]) for k in t)


# -- a dict model ---------------------------------------------------------------------------------

keys = st.sampled_from(["a", "b", "c", "ab", "é"])
values = st.binary(max_size=8)
ttls = st.one_of(st.none(), st.floats(min_value=0.5, max_value=20, allow_nan=False))
ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), keys, values, ttls),
        st.tuples(st.just("get"), keys),
        st.tuples(st.just("delete"), keys),
        st.tuples(st.just("prefix"), st.sampled_from(["a", "b", "é", "z"])),
        st.tuples(st.just("incr"), keys, st.integers(-5, 5)),
        st.tuples(st.just("advance"), st.floats(min_value=0, max_value=15, allow_nan=False)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_matches_a_dict_model(operations):  # noqa: C901, PLR0912  (a branch per operation)
    clock = ManualClock()
    max_stale = 5.0
    t = MemoryTier(TierConfig(max_stale=max_stale), clock=clock)
    model: dict[str, tuple[bytes, float]] = {}  # key -> (value, expires_at)

    def fresh(key):
        found = model.get(key)
        return found is not None and found[1] > clock()

    for op in operations:
        kind = op[0]
        if kind == "set":
            _, key, value, ttl = op
            t.set(key, value, ttl)
            model[key] = (value, float("inf") if ttl is None else clock() + ttl)
        elif kind == "get":
            key = op[1]
            found = model.get(key)
            entry = t.lookup(key)
            if found is None or clock() - found[1] >= max_stale:
                assert entry is None
                model.pop(key, None)
            else:
                assert entry is not None
                assert entry.value == found[0]
                assert entry.stale == (found[1] <= clock())
            assert t.get(key) == (found[0] if fresh(key) else None)
        elif kind == "delete":
            key = op[1]
            assert t.delete(key) == (key in model)
            model.pop(key, None)
        elif kind == "prefix":
            doomed = [k for k in model if k.startswith(op[1])]
            assert t.delete_prefix(op[1]) == len(doomed)
            for k in doomed:
                del model[k]
        elif kind == "incr":
            _, key, amount = op
            if fresh(key):
                try:
                    current = int(model[key][0])
                except ValueError:
                    with pytest.raises(ValueError):
                        t.incr(key, amount)
                    continue
                expires = model[key][1]
            else:
                current, expires = 0, float("inf")
            assert t.incr(key, amount) == current + amount
            model[key] = (str(current + amount).encode(), expires)
        else:
            clock.advance(op[1])
    for key in ("a", "b", "c", "ab", "é"):
        assert (key in t) == fresh(key)
