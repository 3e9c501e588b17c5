from __future__ import annotations

import threading

import pytest

from fender._clock import Clock, ManualClock, monotonic
from fender.errors import CallNotPermitted, ConfigurationError, FenderError, mask


def test_monotonic_clock_moves_forward():
    a = monotonic()
    b = monotonic()
    assert b >= a
    assert isinstance(monotonic, Clock)


def test_manual_clock_moves_only_when_told():
    clock = ManualClock()
    assert clock() == 1000.0
    assert clock.advance(2.5) == 1002.5
    clock.set(1010)
    assert clock() == 1010.0
    assert isinstance(clock, Clock)


@pytest.mark.parametrize("bad", [lambda c: c.advance(-1), lambda c: c.set(999)])
def test_manual_clock_never_goes_back(bad):
    with pytest.raises(ValueError, match="cannot go back"):
        bad(ManualClock())


def test_manual_clock_is_thread_safe():
    clock = ManualClock(0)
    threads = [
        threading.Thread(target=lambda: [clock.advance(1) for _ in range(1000)]) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clock() == 8000


def test_errors_share_a_base_and_carry_their_data():
    assert issubclass(ConfigurationError, ValueError)
    exc = CallNotPermitted("redis", 1.5)
    assert isinstance(exc, FenderError)
    assert exc.retry_after > 0
    assert "1.500s" in str(CallNotPermitted("redis", 1.5))


def test_configuration_error_masks_secrets():
    error = ConfigurationError("SECRET_KEY", "hunter2hunter2", "32 characters", secret=True)
    assert "hunter2" not in str(error)
    assert error.value == "***(14 chars)"
    assert mask(None) == mask("") == ""
