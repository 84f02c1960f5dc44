"""How an agent treats a device that misbehaves: retry, back off, and stop hammering it.

A substation RTU that has lost power will not answer for minutes; polling it every second
with a 2 s timeout wastes the agent's time and the serial line's. The agent's device loop
(:mod:`~smartcity.agents.device_loop`) gives each device its own :class:`Backoff`
(exponential with full jitter, so a hundred agents that lost the same network segment do not
come back in lock-step) and its own :class:`CircuitBreaker` (after ``threshold`` consecutive
failures the device is only probed once per back-off delay), whatever its protocol. One
device's trouble never delays another's poll: each device runs in its own task.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass
class Backoff:
    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """Delay before the next attempt: uniform in [0, min(maximum, initial*factor**n)]."""
        ceiling = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return self.rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class BreakerState(StrEnum):
    CLOSED = "closed"
    """Normal polling."""
    OPEN = "open"
    """Too many failures: no requests until the back-off delay has passed."""
    HALF_OPEN = "half_open"
    """One probe request is allowed; its outcome closes or re-opens the breaker."""


@dataclass
class CircuitBreaker:
    threshold: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    clock: Callable[[], float] = time.monotonic
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    open_until: float = 0.0

    def allow(self) -> bool:
        """Whether a request may be sent now."""
        if self.state is BreakerState.OPEN and self.clock() >= self.open_until:
            self.state = BreakerState.HALF_OPEN
        return self.state is not BreakerState.OPEN

    def record_success(self) -> None:
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.backoff.reset()

    def record_failure(self) -> None:
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.threshold:
            self.state = BreakerState.OPEN
            self.open_until = self.clock() + self.backoff.next_delay()

    @property
    def retry_in(self) -> float:
        """Seconds until the next probe is allowed (0 when requests may be sent)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.open_until - self.clock())
