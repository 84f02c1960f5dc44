"""The supervisor with small real children (``python -c``): restarts with back-off, a SIGKILL
noticed and mended, stages stopped in reverse order, and nothing left behind by a stop,
not even a grandchild or a child that ignores SIGTERM."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest
from support import eventually
from up_support import alive

from smartcity.runtime.config import NatsSettings
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.up.readiness import JetStreamServing, LogLine
from smartcity.up.supervisor import (
    Child,
    ChildEvent,
    ChildFailedError,
    ChildSpec,
    EventKind,
    Supervisor,
    describe_status,
)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[float, ChildEvent]] = []

    def __call__(self, event: ChildEvent) -> None:
        self.seen.append((time.monotonic(), event))

    def of(self, kind: EventKind, name: str | None = None) -> list[tuple[float, ChildEvent]]:
        return [
            (when, event)
            for when, event in self.seen
            if event.kind is kind and (name is None or event.child.name == name)
        ]


async def test_a_crashing_child_is_restarted_with_growing_back_off(tmp_path: Path) -> None:
    events = Events()
    supervisor = Supervisor(
        tmp_path / "logs", on_event=events, backoff_initial=0.1, backoff_max=0.4
    )
    code = "import sys; print('boom: the device is gone', flush=True); sys.exit(3)"
    try:
        await supervisor.start(ChildSpec("crasher", python(code)))
        await eventually(lambda: len(events.of(EventKind.STARTED)) >= 5, within=20, what="5 starts")
    finally:
        await supervisor.stop()
    starts = [when for when, _ in events.of(EventKind.STARTED)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    delays = [event.delay for _, event in events.of(EventKind.RESTARTING)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.4]  # doubling, then capped
    for gap, delay in zip(gaps, delays, strict=False):
        assert gap >= delay
    exited = events.of(EventKind.EXITED)[0][1]
    assert exited.status == 3
    assert "boom: the device is gone" in exited.tail
    log = (tmp_path / "logs" / "crasher.log").read_text()
    assert len(re.findall(r"^--- .* start \d+: ", log, re.M)) >= 5


async def test_a_killed_child_is_noticed_and_started_again(tmp_path: Path) -> None:
    events = Events()
    supervisor = Supervisor(tmp_path / "logs", on_event=events, backoff_initial=0.1)
    code = "import time; print('serving', flush=True); time.sleep(120)"
    spec = ChildSpec("service", python(code), ready=LogLine("^serving$"))
    try:
        child = await supervisor.start(spec)
        await supervisor.wait_ready("service", 20)
        first = child.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await eventually(
            lambda: child.ready and child.pid not in (None, first), within=20, what="a new pid"
        )
        assert child.starts == 2
        (_, exited), *_ = events.of(EventKind.EXITED)
        assert exited.status == -signal.SIGKILL
        assert describe_status(exited.status) == "killed by SIGKILL"
        assert len(events.of(EventKind.READY)) == 2
    finally:
        await supervisor.stop()
    assert not alive(first)


async def test_stop_leaves_nothing_behind_in_reverse_stage_order(tmp_path: Path) -> None:
    events = Events()
    supervisor = Supervisor(tmp_path / "logs", on_event=events, stop_timeout=0.5)
    # A child that forks a grandchild into its group, and one that ignores SIGTERM.
    parent = (
        "import subprocess, sys, time\n"
        "kid = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "print('grandchild', kid.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    stubborn = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ignoring SIGTERM', flush=True)\n"
        "time.sleep(120)\n"
    )
    await supervisor.start(ChildSpec("bus", python(parent), ready=LogLine("grandchild"), stage=0))
    await supervisor.start(
        ChildSpec("agent", python(stubborn), ready=LogLine("ignoring SIGTERM"), stage=1)
    )
    await supervisor.wait_ready("bus", 20)
    await supervisor.wait_ready("agent", 20)
    bus, agent = supervisor.children["bus"], supervisor.children["agent"]
    found = re.search(r"grandchild (\d+)", bus.output())
    assert found is not None
    pids = [bus.pid, agent.pid, int(found.group(1))]
    assert all(pid is not None and alive(pid) for pid in pids)
    began = time.monotonic()
    await supervisor.stop()
    assert time.monotonic() - began < 5
    assert [pid for pid in pids if pid is not None and alive(pid)] == []
    stopped = [event.child.name for _, event in events.of(EventKind.STOPPED)]
    assert stopped == ["agent", "bus"]
    assert events.of(EventKind.STOPPED, "agent")[0][1].status == -signal.SIGKILL
    assert events.of(EventKind.RESTARTING) == []  # stopping is not crashing


async def test_a_child_that_ends_before_it_is_ready_fails_the_wait(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "logs", backoff_initial=5)
    code = "import sys; print('no such port', file=sys.stderr); sys.exit(2)"
    try:
        await supervisor.start(ChildSpec("broken", python(code), ready=LogLine("never")))
        with pytest.raises(ChildFailedError, match=r"broken ended \(exit status 2\)") as failed:
            await supervisor.wait_ready("broken", 20)
        assert "no such port" in failed.value.child.tail()
    finally:
        await supervisor.stop()


async def test_a_child_not_ready_in_time_says_what_it_waited_for(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "logs")
    spec = ChildSpec("slow", python("import time; time.sleep(60)"), ready=LogLine("ready"))
    try:
        await supervisor.start(spec)
        with pytest.raises(ChildFailedError, match=r"not ready within 0.3 s .*'ready' in its log"):
            await supervisor.wait_ready("slow", 0.3)
    finally:
        await supervisor.stop()
    await asyncio.sleep(0)
    assert supervisor.children["slow"].pid is None


async def test_a_log_line_is_found_when_written_in_pieces(tmp_path: Path) -> None:
    log = tmp_path / "piecemeal.log"
    log.write_text("--- earlier run\nready from the last run\n")
    child = Child(ChildSpec("piecemeal", ["true"]), log, log_offset=log.stat().st_size)
    condition = LogLine(r"^NATS .* is ready$")
    assert not await condition.check(child)  # the last run's lines do not count
    with log.open("a") as file:
        file.write("x" * 10_000 + "\nNATS with Jet")
        file.flush()
        assert not await condition.check(child)
        file.write("Stream is ready\n")
        file.flush()
        assert await condition.check(child)


async def test_a_part_of_a_child_is_waited_for_on_its_own(tmp_path: Path) -> None:
    """One process serving several sites: each site's line is enough for that site, before
    the whole child is ready; once it is, every part is; a child that ends first fails."""
    supervisor = Supervisor(tmp_path / "logs", backoff_initial=5)
    go = tmp_path / "go"
    code = (
        "import os, time; print('a: ready', flush=True)\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.02)\n"
        "print('b: ready', flush=True); time.sleep(60)"
    )
    spec = ChildSpec("sites", python(code), ready=LogLine("^b: ready$"))
    try:
        await supervisor.start(spec)
        await supervisor.wait_condition("sites", LogLine("^a: ready$"), 10)
        assert not supervisor.children["sites"].ready
        with pytest.raises(ChildFailedError, match=r"not ready within 0.2 s .*'\^c: ready\$'"):
            await supervisor.wait_condition("sites", LogLine("^c: ready$"), 0.2)
        go.touch()
        await supervisor.wait_ready("sites", 10)
        await supervisor.wait_condition("sites", LogLine("^c: ready$"), 0.2)  # the whole is
        gone = ChildSpec("gone", python("import sys; sys.exit(4)"), ready=LogLine("never"))
        await supervisor.start(gone)
        with pytest.raises(ChildFailedError, match="exit status 4"):
            await supervisor.wait_condition("gone", LogLine("never"), 10)
    finally:
        await supervisor.stop()


async def test_nats_counts_as_ready_once_its_greeting_says_jetstream(tmp_path: Path) -> None:
    child = Child(ChildSpec("nats", ["true"]), tmp_path / "nats.log")

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'INFO {"server_id":"x","jetstream":false}\r\n')
        await writer.drain()
        writer.close()

    plain = await asyncio.start_server(greet, "127.0.0.1", 0)
    port = plain.sockets[0].getsockname()[1]
    async with plain:
        assert not await JetStreamServing("127.0.0.1", port).check(child)
    assert not await JetStreamServing("127.0.0.1", port).check(child)  # nothing listens
    settings = NatsSettings(data_dir=tmp_path / "nats", port=0)
    async with EmbeddedNats(settings) as server:
        assert await JetStreamServing("127.0.0.1", server.port).check(child)
