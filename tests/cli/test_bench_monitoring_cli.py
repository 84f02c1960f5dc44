"""``smartcity bench monitoring`` runs end to end on a small load (its figures are not
asserted: they depend on the machine)."""

from __future__ import annotations

import os
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
    ]
    postgres = os.environ.get("SMARTCITY_TEST_POSTGRES_URL")
    if postgres:
        args += ["--postgres", postgres]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "plain nats-py publish -> consume (ceiling)" in done.stdout
    assert "monitoring ingest into sqlite" in done.stdout
    assert ("monitoring ingest into postgresql" in done.stdout) == bool(postgres)
    assert "p50 / p99" in done.stdout
