"""Disk buffer: real SQLite files; order, durability across reopen, the cap and its count."""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from smartcity.agents.buffer import DiskBuffer


def batch(tag: str, size: int = 10):
    def build(first: int) -> tuple[str, bytes]:
        return tag, (tag.encode() * size)[:size]

    return build


def test_fifo_and_removal(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "b.db")
    firsts = [
        buffer.append("city.telemetry.x.s.d", batch(f"b{n}"), device="d", count=3) for n in range(5)
    ]
    assert [b - a for a, b in itertools.pairwise(firsts)] == [3, 3, 3, 3]
    entries = buffer.peek(10)
    assert [e.msg_id for e in entries] == ["b0", "b1", "b2", "b3", "b4"]
    buffer.remove([entries[0].id, entries[1].id])
    assert [e.msg_id for e in buffer.peek(10)] == ["b2", "b3", "b4"]
    assert [e.msg_id for e in buffer.peek(10, after=entries[2].id)] == ["b3", "b4"]
    stats = buffer.stats()
    assert (stats.batches, stats.bytes) == (3, 30)


def test_contents_and_sequences_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    buffer = DiskBuffer(path)
    first = buffer.append("s", batch("a"), device="d1", count=5, headers={"traceparent": "00-t"})
    buffer.append("s", batch("b"), device="d2", count=2)
    buffer.close()
    again = DiskBuffer(path)
    assert [e.msg_id for e in again.peek()] == ["a", "b"]
    assert [e.headers for e in again.peek()] == [{"traceparent": "00-t"}, {}]
    assert again.peek()[0].payload == b"aaaaaaaaaa"
    assert again.stats().batches == 2
    # sequence numbers continue; a restarted agent never reuses a message id
    assert again.append("s", batch("c"), device="d1", count=1) == first + 5


def test_a_lost_buffer_never_restarts_a_device_below_its_old_sequence(tmp_path: Path) -> None:
    old = DiskBuffer(tmp_path / "old.db")
    last = old.append("s", batch("a"), device="d", count=1000)
    new = DiskBuffer(tmp_path / "new.db")  # the old file is gone; same device
    assert new.append("s", batch("b"), device="d", count=1) > last


def _append_then_die(path: str, ready: multiprocessing.synchronize.Event) -> None:
    buffer = DiskBuffer(path)
    for n in range(100):
        buffer.append("s", batch(f"k{n}"), device="d", count=1)
    ready.set()
    os.kill(os.getpid(), signal.SIGKILL)


def test_appended_batches_survive_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    child = context.Process(target=_append_then_die, args=(str(path), ready))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == -signal.SIGKILL
    assert ready.is_set()
    survivor = DiskBuffer(path)
    assert [e.msg_id for e in survivor.peek(1000)] == [f"k{n}" for n in range(100)]


def test_cap_drops_oldest_counted_and_logged(tmp_path: Path, caplog) -> None:
    buffer = DiskBuffer(tmp_path / "b.db", max_bytes=100)
    for n in range(10):
        buffer.append("s", batch(f"{n}"), device="d", count=1)
    assert buffer.stats().bytes == 100
    with caplog.at_level(logging.ERROR, logger="smartcity.agents.buffer"):
        buffer.append("s", batch("x", size=25), device="d", count=1)
    stats = buffer.stats()
    assert stats.dropped_batches == 3
    assert stats.dropped_bytes == 30
    assert stats.bytes == 95
    assert buffer.peek(1)[0].msg_id == "3"
    assert "dropped the 3 oldest batch(es)" in caplog.text
    # the loss count is durable
    buffer.close()
    assert DiskBuffer(tmp_path / "b.db", max_bytes=100).stats().dropped_batches == 3


def test_a_batch_larger_than_the_cap_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "b.db", max_bytes=50)
    first = buffer.append("s", batch("a"), device="d", count=1)
    with pytest.raises(ValueError, match="exceeds the buffer cap"):
        buffer.append("s", batch("big", size=60), device="d", count=1)
    assert [e.msg_id for e in buffer.peek()] == ["a"]
    # the failed append did not consume sequence numbers
    assert buffer.append("s", batch("b"), device="d", count=1) == first + 1
