"""Back-off and circuit breaker: a failing device is probed less and less, then recovers."""

from __future__ import annotations

import random

from smartcity.agents.resilience import Backoff, BreakerState, CircuitBreaker


def test_backoff_is_jittered_exponential_and_capped() -> None:
    backoff = Backoff(initial=1, maximum=8, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(200)]
    ceilings = [min(8, 2**n) for n in range(200)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len({round(d, 6) for d in delays}) > 150  # jittered, not lock-step
    assert max(delays[10:]) > 4  # grows to the cap
    backoff.reset()
    assert backoff.next_delay() <= 1


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_threshold_and_half_opens_after_delay() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, backoff=Backoff(initial=4, maximum=4), clock=clock)
    for _ in range(2):
        breaker.record_failure()
        assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    clock.now = breaker.open_until
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_failure()  # a failed probe re-opens at once
    assert breaker.state is BreakerState.OPEN
    clock.now = breaker.open_until
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 0
    assert breaker.retry_in == 0
