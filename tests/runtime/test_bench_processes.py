"""Process-tree accounting for ``smartcity bench up``, checked against processes whose cost is
known: a child that burns CPU for a measured while, and one that holds a known amount of
memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from smartcity.bench.processes import cpu_between, descendants, tree


def _wait(condition, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_busy_child_is_found_below_its_parent_and_its_cpu_counted() -> None:
    # The child's grandchild spins; the tree of this process must contain both.
    code = (
        "import subprocess, sys;"
        "p = subprocess.Popen([sys.executable, '-c', 'import time\\n"
        "end = time.process_time() + 0.6\\nwhile time.process_time() < end: pass\\n"
        'print("done", flush=True)\\nimport sys; sys.stdin.read()\'],'
        " stdout=sys.stdout, stdin=subprocess.PIPE);"
        "print(p.pid, flush=True); p.wait()"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        grandchild = int(parent.stdout.readline())
        before = tree(os.getpid())
        assert parent.pid in before
        assert grandchild in before
        assert descendants(os.getpid()).index(parent.pid) < descendants(os.getpid()).index(
            grandchild
        )
        assert parent.stdout.readline().strip() == "done"
        after = tree(os.getpid())
        spent = cpu_between({grandchild: before[grandchild]}, {grandchild: after[grandchild]})
        # 0.6 s of CPU were burnt after the first sample at the latest; the clock ticks at
        # 1/100 s, and the spin may have started before the first sample.
        assert 0.0 < spent <= 0.7
        assert cpu_between(before, after) >= spent
    finally:
        parent.kill()
        parent.wait()


def test_memory_held_by_a_child_is_counted() -> None:
    size = 200 * 1024 * 1024
    child = subprocess.Popen(
        [sys.executable, "-c", f"b = bytearray({size}); print('held', flush=True); input()"],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        memory = tree(child.pid)[child.pid].memory_bytes
        # bytearray zero-fills, so every page is touched and resident; the interpreter
        # itself adds a few MiB, less than 100.
        assert size <= memory < size + 100 * 1024 * 1024
    finally:
        child.kill()
        child.wait()


def test_a_pid_that_is_gone_is_left_out() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    _wait(lambda: child.pid not in tree(os.getpid()))
    assert tree(child.pid) == {}
