"""Device health from the age of the last batch, counted in the device's poll intervals."""

from __future__ import annotations

import pytest

from smartcity.runtime.config import MonitoringSettings
from smartcity.services.monitoring.health import (
    DeviceHealth,
    HealthPolicy,
    count_states,
    device_health,
)
from smartcity.services.monitoring.model import MICROS, DeviceRecord, DeviceState

SECOND = MICROS
FIRST_SEEN = 1_700_000_000 * SECOND
LAST_SEEN = FIRST_SEEN + 3600 * SECOND
POLICY = HealthPolicy(stale_after_intervals=3, offline_after_intervals=10)


def record(poll_interval: int, last_seen: int = LAST_SEEN) -> DeviceRecord:
    return DeviceRecord(
        field="water_supply",
        site="cau-do",
        device="analyser-1",
        agent_id="edge-1",
        first_seen=FIRST_SEEN,
        last_seen=last_seen,
        poll_interval=poll_interval,
        last_sequence=42,
        metrics=("turbidity", "ph"),
    )


@pytest.mark.parametrize(
    ("silence", "state", "since"),
    [
        (0, DeviceState.ONLINE, None),
        (29 * SECOND, DeviceState.ONLINE, None),
        (30 * SECOND, DeviceState.ONLINE, None),  # exactly three intervals: still online
        (30 * SECOND + 1, DeviceState.STALE, LAST_SEEN + 30 * SECOND),
        (100 * SECOND, DeviceState.STALE, LAST_SEEN + 30 * SECOND),
        (100 * SECOND + 1, DeviceState.OFFLINE, LAST_SEEN + 100 * SECOND),
        (86_400 * SECOND, DeviceState.OFFLINE, LAST_SEEN + 100 * SECOND),
    ],
)
def test_state_follows_silence_in_poll_intervals(
    silence: int, state: DeviceState, since: int | None
) -> None:
    health = device_health(record(10 * SECOND), LAST_SEEN + silence, POLICY)
    assert health == DeviceHealth(state, since)


def test_the_same_silence_means_different_things_at_different_intervals() -> None:
    now = LAST_SEEN + 60 * SECOND
    assert device_health(record(1 * SECOND), now, POLICY).state is DeviceState.OFFLINE
    assert device_health(record(15 * SECOND), now, POLICY).state is DeviceState.STALE
    assert device_health(record(15 * 60 * SECOND), now, POLICY).state is DeviceState.ONLINE


def test_unknown_until_an_interval_is_estimated() -> None:
    health = device_health(record(0), LAST_SEEN + 86_400 * SECOND, POLICY)
    assert health == DeviceHealth(DeviceState.UNKNOWN, FIRST_SEEN)


def test_a_clock_behind_the_last_batch_counts_as_just_heard_from() -> None:
    assert device_health(record(SECOND), LAST_SEEN - 5 * SECOND, POLICY).state is (
        DeviceState.ONLINE
    )


def test_policy_comes_from_settings_and_refuses_inverted_limits() -> None:
    settings = MonitoringSettings(stale_after_intervals=2, offline_after_intervals=5)
    policy = HealthPolicy.from_settings(settings)
    assert device_health(record(SECOND), LAST_SEEN + 3 * SECOND, policy).state is (
        DeviceState.STALE
    )
    with pytest.raises(ValueError, match="must be greater than stale_after_intervals"):
        HealthPolicy(stale_after_intervals=5, offline_after_intervals=5)
    with pytest.raises(ValueError, match="must be positive"):
        HealthPolicy(stale_after_intervals=0)


def test_count_states_lists_every_state() -> None:
    now = LAST_SEEN + 50 * SECOND
    healths = [
        device_health(record(100 * SECOND), now, POLICY),
        device_health(record(100 * SECOND), now, POLICY),
        device_health(record(10 * SECOND), now, POLICY),
        device_health(record(0), now, POLICY),
    ]
    assert count_states(healths) == {
        DeviceState.UNKNOWN: 1,
        DeviceState.ONLINE: 2,
        DeviceState.STALE: 1,
        DeviceState.OFFLINE: 0,
    }
