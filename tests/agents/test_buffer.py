"""Disk buffer: real SQLite files; order, durability across reopen, the cap and its count,
rollback of the file, its lock, and errors of the disk."""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smartcity.agents.buffer import DiskBuffer, NewBatch
from smartcity.runtime.errors import FailedPrecondition


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
    # sequence numbers keep growing; a restarted agent never reuses one
    assert again.append("s", batch("c"), device="d1", count=1) >= first + 5


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


def test_a_restored_copy_of_the_buffer_reuses_no_sequence_and_no_id(tmp_path: Path) -> None:
    """A VM snapshot restored: the counters go back, the identities must not."""
    path = tmp_path / "b.db"
    ids: list[str] = []

    def named(first: int) -> tuple[str, bytes]:
        return f"{buffer.epoch}/{first}", b"x"

    buffer = DiskBuffer(path)
    before = buffer.append("s", named, device="d", count=5)
    ids.append(buffer.peek()[-1].msg_id)
    buffer.close()
    shutil.copy(path, tmp_path / "snapshot.db")
    buffer = DiskBuffer(path)
    used = buffer.append("s", named, device="d", count=5)
    ids.append(buffer.peek()[-1].msg_id)
    buffer.close()
    shutil.copy(tmp_path / "snapshot.db", path)  # the restore
    buffer = DiskBuffer(path)
    after = buffer.append("s", named, device="d", count=5)
    assert len(buffer.peek()) == 2  # the restored copy's batch, and the new one
    ids.append(buffer.peek()[-1].msg_id)
    assert after >= used + 5 > before
    assert len(ids) == len(set(ids)), ids
    ranges = buffer.reserved()["d"]
    assert (after, after + 5) in ranges


def test_a_group_is_stored_whole_or_not_at_all(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "b.db")
    first = buffer.append("s", batch("a"), device="d", count=2)

    def broken(first: int) -> tuple[str, bytes]:
        raise RuntimeError("cannot encode")

    with pytest.raises(RuntimeError):
        buffer.append_many([NewBatch("s", "d", 3, batch("b")), NewBatch("s", "e", 1, broken)])
    assert [e.msg_id for e in buffer.peek()] == ["a"]
    assert buffer.append("s", batch("c"), device="d", count=1) == first + 2


def test_a_write_lock_held_elsewhere_fails_the_append_without_a_trace(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    buffer = DiskBuffer(path, busy_timeout=0.1)
    first = buffer.append("s", batch("a"), device="d", count=1)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        buffer.append("s", batch("b"), device="d", count=1)
    other.execute("ROLLBACK")
    other.close()
    assert buffer.append("s", batch("c"), device="d", count=1) == first + 1
    assert [e.msg_id for e in buffer.peek()] == ["a", "c"]
    assert buffer.stats().batches == 2


def test_one_buffer_one_process(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    buffer = DiskBuffer(path)
    with pytest.raises(FailedPrecondition, match=f"{path} is in use by another process"):
        DiskBuffer(path)
    # another process is refused too, while this one holds the buffer
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from smartcity.agents.buffer import DiskBuffer\n"
            "try:\n    DiskBuffer(sys.argv[1])\n"
            "except Exception as exc:\n    print(exc)",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"(pid {os.getpid()})" in probe.stdout
    buffer.close()
    DiskBuffer(path).close()  # free again once closed


def test_a_merge_takes_the_place_and_the_id_of_the_first(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "b.db")
    for tag, subject in [("a1", "a"), ("b1", "b"), ("a2", "a"), ("a3", "a"), ("b2", "b")]:
        buffer.append(subject, batch(tag), device=subject, count=2)
    a1, _, a2, a3, _ = buffer.peek()
    (merged,) = buffer.merge([([a1, a2, a3], b"m" * 25, 6)])
    assert [(e.msg_id, e.readings) for e in buffer.peek()] == [("a1", 6), ("b1", 2), ("b2", 2)]
    assert buffer.peek()[0] == merged
    assert (buffer.stats().batches, buffer.stats().bytes) == (3, 45)


def test_a_merge_read_before_another_one_changes_nothing(tmp_path: Path) -> None:
    """Two merges of the same batches, both read before either ran (an uplink stopped in the
    middle of one, then drained): the second is refused, and the counts stay true."""
    buffer = DiskBuffer(tmp_path / "b.db")
    for tag in ("a1", "a2", "a3", "b1"):
        buffer.append(tag[0], batch(tag), device=tag[0], count=2)
    a1, a2, a3, b1 = buffer.peek()
    buffer.merge([([a1, a2, a3], b"m" * 25, 6)])
    stale, fresh = buffer.merge([([a1, a2, a3], b"n" * 25, 6), ([b1, b1], b"b" * 10, 2)])
    assert stale is None
    assert fresh is None  # a group naming a batch twice is no run of batches either
    assert [(e.msg_id, e.payload) for e in buffer.peek()] == [("a1", b"m" * 25), ("b1", b"b1" * 5)]
    assert (buffer.stats().batches, buffer.stats().bytes) == (2, 35)
    with sqlite3.connect(tmp_path / "b.db") as db:
        assert db.execute("SELECT count(*), sum(length(payload)) FROM batches").fetchone() == (
            2,
            35,
        )


def test_stats_never_wait_for_the_disk(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    buffer = DiskBuffer(path, busy_timeout=5)
    buffer.append("s", batch("a"), device="d", count=1)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    assert buffer.stats().batches == 1
    assert time.monotonic() - started < 0.1
    other.execute("ROLLBACK")
    other.close()
