"""``smartcity bench monitoring`` runs end to end on a small load (its figures are not
asserted: they depend on the machine)."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def test_bench_monitoring_runs_on_both_backends() -> None:
    args = [
        sys.executable,
        "-m",
        "smartcity.cli.main",
        "bench",
        "monitoring",
        "--devices",
        "2",
        "--batches",
        "5",
        "--per-batch",
        "50",
        "--query-points",
        "2000",
        "--rounds",
        "2",
    ]
    postgres = os.environ.get("SMARTCITY_TEST_POSTGRES_URL")
    if postgres:
        args += ["--postgres", postgres]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "plain nats-py publish -> consume (transport)" in out
    assert "SQLite executemany of the same rows (ceiling)" in out
    assert "monitoring ingest into sqlite" in out
    assert ("PostgreSQL COPY (ceiling)" in out) == bool(postgres)
    assert ("monitoring ingest into postgresql" in out) == bool(postgres)
    assert "1 matching and 10 other live streams attached" in out
    assert "median of 2 round(s)" in " ".join(out.split())  # the title may wrap
    # The median ratio, then the lowest and highest of the rounds.
    assert re.search(r"monitoring ingest into sqlite\s.*\d+% \(\d+%–\d+%\)", out), out
    assert "p50 / p99" in out
