"""``smartcity bench alerts`` on a small load: every probe's event arrives, and the figures it
prints are there to print."""

from __future__ import annotations

import pytest

from smartcity.bench.alerts import run_alerts_bench

pytestmark = pytest.mark.slow


async def test_the_bench_times_every_probe() -> None:
    figures = await run_alerts_bench(rate=800, rules=16, seconds=1.5, interval=0.05, progress=print)
    assert figures.lost == 0
    assert len(figures.alert_ms) >= 10
    assert len(figures.raw_ms) == 200
    assert 0 < figures.percentile(figures.raw_ms, 0.5) <= figures.percentile(figures.raw_ms, 0.99)
    assert figures.evaluations_per_second > 0
    assert figures.capacity_per_second >= figures.evaluations_per_second
    assert figures.published_rate > 0
