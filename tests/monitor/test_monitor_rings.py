"""A worker's rings: per-second buckets reused after 15 minutes, routes, gauges, sharing."""

from __future__ import annotations

from fender.monitor._histogram import bin_of
from fender.monitor._merge import merged_rows, route_windows, windows
from fender.monitor._rings import MAX_ROUTES, OTHER_ROUTE, SECONDS, Rings, read_rings

BASE = 1_800_000_000  # a wall second
# A bucket as second() gives it: requests, errors, rejected, memory, breakers, slow, bins.
SLOW_AT, BINS_AT = 5, 6


def test_a_second_counts_requests_errors_and_latency():
    rings = Rings.create(None, BASE, slow=0.015)
    rings.record("/a", 200, 0.010, BASE + 0.1)
    rings.record("/a", 503, 0.020, BASE + 0.9)
    rings.rejected(BASE + 0.5)
    bucket = rings.second(BASE)
    assert bucket is not None
    requests, errors, rejected = bucket[0], bucket[1], bucket[2]
    assert (requests, errors, rejected) == (2, 1, 1)
    assert bucket[BINS_AT + bin_of(0.010)] == 1
    assert bucket[BINS_AT + bin_of(0.020)] == 1
    assert bucket[SLOW_AT] == 1  # 20 ms is past the 15 ms threshold; 10 ms is not
    assert rings.second(BASE + 1) is None


def test_a_bucket_is_reused_fifteen_minutes_later_and_forgets_the_old_second():
    rings = Rings.create(None, BASE)
    rings.record("/a", 200, 0.01, BASE + 5)
    rings.record("/a", 200, 0.01, BASE + 5 + SECONDS)
    assert rings.second(BASE + 5) is None
    later = rings.second(BASE + 5 + SECONDS)
    assert later is not None
    assert later[0] == 1


def test_routes_past_the_slots_count_under_other():
    rings = Rings.create(None, BASE)
    for n in range(MAX_ROUTES + 10):
        rings.record(f"/r{n}", 200, 0.01, BASE)
    names = {rings.route_name(slot) for slot in range(rings.route_count)}
    assert len(names) == MAX_ROUTES
    assert OTHER_ROUTE in names
    routes = route_windows([rings], [BASE // 60])
    assert routes[OTHER_ROUTE].requests == 11  # the 64th and later routes
    assert sum(w.requests for w in routes.values()) == MAX_ROUTES + 10


def test_gauges_merge_by_the_worst_worker_and_counts_add(tmp_path):
    first = Rings.create(tmp_path / "rings_1.bin", BASE)
    second = Rings.create(tmp_path / "rings_2.bin", BASE - 30)  # started earlier
    first.record("/a", 200, 0.01, BASE + 2)
    second.record("/a", 500, 0.01, BASE + 2)
    first.sample(BASE + 2, 0.40, 0)
    second.sample(BASE + 2, 0.81, 2)
    readers = list(read_rings(tmp_path))
    assert sorted(r.pid for r in readers) == [first.pid, second.pid]
    (row,) = merged_rows(readers, BASE + 2, BASE + 2)
    assert row is not None
    assert row[:2] == [2, 1]
    assert (row[3] - 1) / 1000 == 0.81
    assert row[4] - 1 == 2
    for ring in readers:
        ring.close()


def test_a_reader_in_another_mapping_sees_the_owners_writes(tmp_path):
    owner = Rings.create(tmp_path / "rings_7.bin", BASE)
    (reader,) = read_rings(tmp_path)
    owner.record("/items/{id}", 200, 0.2, BASE + 61)
    window = windows(merged_rows([reader], BASE + 61 - 899, BASE + 61))["1m"]
    assert window.requests == 1
    assert reader.route_name(0) == "/items/{id}"
    reader.close()


def test_files_of_another_shape_are_skipped(tmp_path):
    (tmp_path / "rings_9.bin").write_bytes(b"not ours")
    Rings.create(tmp_path / "rings_1.bin", BASE)
    assert len(list(read_rings(tmp_path))) == 1


def test_windows_cover_the_last_1_5_and_15_minutes():
    rings = Rings.create(None, BASE)
    now = BASE + 1000
    for age in (900, 899, 300, 299, 60, 59, 0):  # in time order, as a clock writes
        rings.record("/a", 200, 0.01, now - age)
    result = windows(merged_rows([rings], now - 899, now))
    assert result["1m"].requests == 2
    assert result["5m"].requests == 4
    assert result["15m"].requests == 6  # 900 s ago is out (and its bucket reused)
