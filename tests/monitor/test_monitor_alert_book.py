"""The alert book: pending, firing after ``for``, resolving once; its state carried over."""

from __future__ import annotations

from fender.monitor import AlertBook, Rule


def said(value: float, threshold: float, subject: str | None) -> str:
    return f"{subject}: {value} over {threshold}"


RULES = {
    "slow": Rule("slow", "warning", 10.0, 30.0, said),
    "open": Rule("open", "critical", 1.0, 0.0, said, inclusive=True),
}


def test_an_alert_fires_once_after_its_for_and_resolves_once():
    book = AlertBook(RULES)
    kinds = []
    for now in range(100, 140):
        kinds += [(now, t.kind) for t in book.evaluate({("slow", None): 11.0}, float(now))]
    assert kinds == [(130, "firing")]  # across at 100, for 30 s
    assert [a.name for a in book.firing()] == ["slow"]
    resolved = book.evaluate({("slow", None): 9.0}, 140.0)
    assert [(t.kind, t.alert.resolved_at) for t in resolved] == [("resolved", 140.0)]
    assert book.evaluate({("slow", None): 9.0}, 141.0) == []
    assert book.firing() == []
    assert [a.firing_since for a in book.resolved()] == [130.0]


def test_a_pending_alert_that_falls_back_is_forgotten_without_a_word():
    book = AlertBook(RULES)
    assert book.evaluate({("slow", None): 11.0}, 100.0) == []
    assert book.evaluate({("slow", None): 1.0}, 120.0) == []
    # across again: the 30 s count from the new crossing
    assert book.evaluate({("slow", None): 11.0}, 125.0) == []
    assert book.evaluate({("slow", None): 11.0}, 154.0) == []
    assert [t.kind for t in book.evaluate({("slow", None): 11.0}, 155.0)] == ["firing"]
    assert book.resolved() == []


def test_an_absent_reading_resolves_and_subjects_are_separate_alerts():
    book = AlertBook(RULES)
    fired = book.evaluate({("open", "redis"): 1.0, ("open", "db"): 1.0}, 10.0)
    assert [(t.kind, t.alert.subject) for t in fired] == [("firing", "db"), ("firing", "redis")]
    gone = book.evaluate({("open", "db"): 1.0}, 11.0)  # redis closed: no reading
    assert [(t.kind, t.alert.subject) for t in gone] == [("resolved", "redis")]


def test_inclusive_thresholds_fire_at_the_threshold():
    book = AlertBook({"streak": Rule("streak", "critical", 3.0, 0.0, said, inclusive=True)})
    assert book.evaluate({("streak", "db"): 2.0}, 1.0) == []
    assert [t.kind for t in book.evaluate({("streak", "db"): 3.0}, 2.0)] == ["firing"]


def test_a_book_continues_from_anothers_state_without_firing_again():
    first = AlertBook(RULES)
    first.evaluate({("slow", None): 11.0}, 100.0)
    first.evaluate({("slow", None): 11.0}, 130.0)
    successor = AlertBook(RULES)
    successor.restore(first.state())
    assert successor.evaluate({("slow", None): 12.0}, 131.0) == []
    assert successor.firing()[0].firing_since == 130.0
    assert [t.kind for t in successor.evaluate({}, 132.0)] == ["resolved"]


def test_state_of_unknown_shape_or_rules_is_skipped():
    book = AlertBook(RULES)
    book.restore({"alerts": [{"bogus": 1}, {**_alert(), "name": "gone"}], "resolved": [7]})
    assert book.firing() == []
    assert book.resolved() == []


def test_the_resolved_list_keeps_the_newest():
    book = AlertBook(RULES, keep_resolved=2)
    for now in range(0, 10, 2):
        book.evaluate({("open", "x"): 1.0}, float(now))
        book.evaluate({}, float(now + 1))
    assert [a.resolved_at for a in book.resolved()] == [9.0, 7.0]


def _alert() -> dict[str, object]:
    return {
        "name": "slow",
        "subject": None,
        "severity": "warning",
        "across_since": 1.0,
        "value": 11.0,
        "threshold": 10.0,
        "message": "m",
        "firing_since": 2.0,
    }
