"""Random sequences of calls and clock moves against a small reference model of the breaker."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from fender._clock import ManualClock
from fender.resilience import BreakerConfig, CircuitBreaker, SlidingWindowType

SLOW_THRESHOLD = 1.0
RECOVERY = 30.0


@dataclasses.dataclass
class Model:
    """The rules written as plainly as possible: a list of every outcome, no buckets."""

    config: BreakerConfig
    state: str = "closed"
    outcomes: list[tuple[float, bool, bool]] = dataclasses.field(default_factory=list)
    consecutive: int = 0
    open_until: float = 0.0
    successes: int = 0

    def window(self, now):
        size = self.config.sliding_window_size
        if self.config.sliding_window_type is SlidingWindowType.COUNT_BASED:
            return self.outcomes[-size:]
        return [o for o in self.outcomes if int(o[0]) > int(now) - size]

    def call(self, now, kind) -> bool:
        failed, slow = kind == "fail", kind == "slow"
        if self.state == "open":
            if now < self.open_until:
                return False
            self.state, self.successes = "half_open", 0
        if self.state == "half_open":
            if failed or slow:
                self.state, self.open_until = "open", now + RECOVERY
            else:
                self.successes += 1
                if self.successes >= self.config.success_threshold:
                    self.state, self.outcomes, self.consecutive = "closed", [], 0
            return True
        self.outcomes.append((now, failed, slow))
        self.consecutive = self.consecutive + 1 if failed else 0
        window = self.window(now)
        config = self.config
        minimum = config.minimum_number_of_calls
        if config.sliding_window_type is SlidingWindowType.COUNT_BASED:
            minimum = min(minimum, config.sliding_window_size)
        fails = sum(o[1] for o in window)
        slows = sum(o[2] for o in window)
        rate, slow_rate = config.failure_rate_threshold or 1e9, config.slow_call_rate_threshold
        if self.consecutive >= (config.failure_threshold or 1e9) or (
            len(window) >= minimum
            and (fails * 100 >= rate * len(window) or slows * 100 >= slow_rate * len(window))
        ):
            self.state, self.open_until = "open", now + RECOVERY
        return True


configs = st.builds(
    BreakerConfig,
    failure_threshold=st.one_of(st.none(), st.integers(1, 6)),
    failure_rate_threshold=st.sampled_from([25.0, 50.0, 100.0]),
    slow_call_rate_threshold=st.sampled_from([50.0, 100.0]),
    slow_call_duration_threshold=st.just(SLOW_THRESHOLD),
    sliding_window_type=st.sampled_from(SlidingWindowType),
    sliding_window_size=st.integers(1, 8),
    minimum_number_of_calls=st.integers(1, 8),
    recovery_timeout=st.just(RECOVERY),
    recovery_jitter=st.just(0.0),
    permitted_calls_in_half_open=st.just(1),
    success_threshold=st.integers(1, 3),
)
steps = st.lists(
    st.one_of(
        st.sampled_from(["ok", "fail", "slow"]),
        st.floats(0.0, 40.0, allow_nan=False).map(lambda seconds: ("wait", seconds)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(config=configs, script=steps)
def test_breaker_matches_the_reference_model(config, script):
    clock = ManualClock()
    breaker = CircuitBreaker("model", config, clock=clock)
    model = Model(config)
    for step in script:
        if isinstance(step, tuple):
            clock.advance(step[1])
            continue
        admitted = model.call(clock(), step)
        permit = breaker.try_acquire()
        assert (permit is not None) == admitted, (step, model.state, breaker.state)
        if permit is not None:
            if step == "fail":
                breaker.on_error(ConnectionError(), 0.0, permit)
            else:
                breaker.on_success(2 * SLOW_THRESHOLD if step == "slow" else 0.0, permit)
        assert breaker.state == model.state
        if model.state == "closed":
            snapshot = breaker.snapshot()
            assert snapshot.consecutive_failures == model.consecutive
            assert snapshot.calls == len(model.window(clock()))
