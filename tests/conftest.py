"""Suite-wide test policy.

CI sets ``SMARTCITY_TEST_STRICT=1``: there every test must run, so a test that would be
skipped (a missing PostgreSQL, a missing tool such as ``socat``) fails instead, naming what
was missing. On a laptop the same test is skipped with the same message.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

STRICT = os.environ.get("SMARTCITY_TEST_STRICT", "") not in ("", "0", "false", "no")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in strict mode (SMARTCITY_TEST_STRICT=1): {reason}"
    return report
