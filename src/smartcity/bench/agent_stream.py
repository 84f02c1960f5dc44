"""What ``smartcity bench agent`` counts at the far end: the TELEMETRY stream read back
whole, and the CPU time of the agent's processes.

Readings are counted by identity, ``(device, sequence)``, never by batch headers: a batch
JetStream stored twice (a replay after its duplicate window) counts once, and a reading the
agent numbered but never delivered shows as a gap in its device's sequence.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class StreamCount:
    messages: int
    readings: int
    """Readings in the stream, repeats included."""
    distinct: int
    """Distinct ``(device, sequence)`` pairs."""
    gaps: int
    """Sequences missing between a device's first and last one in the stream."""
    bad: int
    """Distinct readings whose quality is not GOOD."""
    acknowledged_in_window: int
    """Distinct readings first stored by JetStream during the measured window."""
    good_in_window: int
    """Distinct GOOD readings read (``read_time``) during the measured window."""


async def count_stream(
    bus: object,
    *,
    window: tuple[float, float],
    stream_window: tuple[int, int],
) -> StreamCount:
    """Read every message of the TELEMETRY stream and count its readings by identity.

    ``stream_window`` is the stream's last sequence at the start and at the end of the
    measured window: a reading is acknowledged in the window when the first message that
    holds it has a stream sequence in ``(start, end]``. ``window`` bounds ``read_time``.
    """
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    from smartcity.common.v1 import common_pb2
    from smartcity.runtime.bus import TELEMETRY_STREAM
    from smartcity.telemetry.v1 import telemetry_pb2

    js = bus.js  # type: ignore[attr-defined]
    info = await js.stream_info(TELEMETRY_STREAM)
    last = info.state.last_seq
    sub = await js.pull_subscribe(
        "city.telemetry.>",
        stream=TELEMETRY_STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE),
    )
    good = common_pb2.QUALITY_GOOD
    t0, t1 = window
    s0, s1 = stream_window
    seen: dict[str, set[int]] = {}
    messages = readings = bad = acknowledged = good_read = 0
    at = 0
    try:
        while at < last:
            for msg in await sub.fetch(1000, timeout=10):
                at = msg.metadata.sequence.stream
                batch = telemetry_pb2.TelemetryBatch.FromString(msg.data)
                messages += 1
                in_window = s0 < at <= s1
                known = seen.setdefault(f"{batch.site}/{batch.device}", set())
                for reading in batch.readings:
                    readings += 1
                    sequence = reading.sequence
                    if sequence in known:
                        continue
                    known.add(sequence)
                    acknowledged += in_window
                    if reading.quality != good:
                        bad += 1
                        continue
                    stamp = reading.read_time
                    if t0 <= stamp.seconds + stamp.nanos * 1e-9 <= t1:
                        good_read += 1
    finally:
        await sub.unsubscribe()
    gaps = sum(max(known) - min(known) + 1 - len(known) for known in seen.values() if known)
    return StreamCount(
        messages=messages,
        readings=readings,
        distinct=sum(len(known) for known in seen.values()),
        gaps=gaps,
        bad=bad,
        acknowledged_in_window=acknowledged,
        good_in_window=good_read,
    )


def _stat(pid: int) -> tuple[int, float] | None:
    """``(parent pid, CPU seconds)`` of a process, from ``/proc/<pid>/stat``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
    # state ppid ... utime (14th field of the line, 12th here) stime (15th)
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


def agent_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` and its descendants (an agent's worker
    processes), as they stand now."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
    children: dict[int, list[int]] = {}
    for child, (parent, _) in stats.items():
        children.setdefault(parent, []).append(child)
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        if current in stats:
            total += stats[current][1]
        todo += children.get(current, [])
    return total
