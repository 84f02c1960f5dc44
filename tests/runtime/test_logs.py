"""One log format for structlog and stdlib records, with the current trace on each line."""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from smartcity.runtime.config import LoggingSettings
from smartcity.runtime.logs import get_logger, setup_logging

ANSI_ESCAPE = re.compile(r"\x1b\[")

Setup = Callable[..., io.StringIO]


@pytest.fixture
def configure() -> Iterator[Setup]:
    """Calls setup_logging on a fresh buffer; the root logger is restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def setup(level: str = "DEBUG", fmt: str = "json", **kwargs: object) -> io.StringIO:
        stream = io.StringIO()
        setup_logging(LoggingSettings(level=level, format=fmt), stream=stream, **kwargs)
        return stream

    yield setup
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_has_the_standard_fields_and_the_active_trace(configure: Setup) -> None:
    stream = configure()
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("ingest batch") as span:
        get_logger("smartcity.test.ingest").info("batch stored", readings=120, field="water")

    [line] = lines(stream)
    assert line["event"] == "batch stored"
    assert line["level"] == "info"
    assert line["logger"] == "smartcity.test.ingest"
    assert (line["readings"], line["field"]) == (120, "water")
    stamp = datetime.fromisoformat(str(line["timestamp"]))
    assert stamp.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60
    context = span.get_span_context()
    assert line["trace_id"] == trace.format_trace_id(context.trace_id)
    assert line["span_id"] == trace.format_span_id(context.span_id)


def test_no_trace_fields_outside_a_span(configure: Setup) -> None:
    stream = configure()
    get_logger("smartcity.test").warning("no span here")
    [line] = lines(stream)
    assert "trace_id" not in line
    assert "span_id" not in line
    assert line["level"] == "warning"


def test_stdlib_records_share_the_format(configure: Setup) -> None:
    stream = configure(service="monitoring")
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("reconnect") as span:
        logging.getLogger("nats.aio.client").warning(
            "connection to %s lost", "nats://127.0.0.1:4222", extra={"attempt": 3}
        )
    get_logger("smartcity.test").info("ours")

    theirs, ours = lines(stream)
    assert theirs["event"] == "connection to nats://127.0.0.1:4222 lost"
    assert theirs["logger"] == "nats.aio.client"
    assert theirs["level"] == "warning"
    assert theirs["attempt"] == 3
    assert theirs["trace_id"] == trace.format_trace_id(span.get_span_context().trace_id)
    assert set(ours) - {"event"} <= set(theirs)
    assert theirs["service"] == ours["service"] == "monitoring"


def decode(register: int, token: str) -> None:
    """Fails with ``token`` in a local variable, which must never reach a log."""
    raise ValueError(f"register {register} out of range ({len(token)})")


def test_exceptions_are_structured_in_json(configure: Setup) -> None:
    stream = configure()
    token = secrets.token_hex(16)
    try:
        decode(40001, token)
    except ValueError:
        get_logger("smartcity.test").exception("decode failed")
    try:
        raise KeyError("bay-9")
    except KeyError:
        logging.getLogger("kopf.objects").exception("handler failed")

    ours, theirs = lines(stream)
    assert ours["level"] == "error"
    assert json.dumps(ours["exception"]).count("register 40001 out of range") >= 1
    assert "ValueError" in json.dumps(ours["exception"])
    assert "KeyError" in json.dumps(theirs["exception"])
    assert token not in stream.getvalue()


def test_console_tracebacks_leave_out_locals(configure: Setup) -> None:
    stream = configure(fmt="console")
    token = secrets.token_hex(16)
    try:
        decode(7, token)
    except ValueError:
        get_logger("smartcity.test").exception("decode failed")
    text = stream.getvalue()
    assert "register 7 out of range" in text
    assert "in decode" in text
    assert token not in text


def test_setting_up_twice_does_not_duplicate_lines(configure: Setup) -> None:
    first = configure()
    second = configure()
    get_logger("smartcity.test").info("once")
    logging.getLogger("asyncio").warning("once too")

    assert first.getvalue() == ""
    assert [line["event"] for line in lines(second)] == ["once", "once too"]
    ours = [h for h in logging.getLogger().handlers if type(h).__name__ == "_PlatformHandler"]
    assert len(ours) == 1


def test_level_filters_both_kinds_of_record(configure: Setup) -> None:
    stream = configure(level="warning")
    get_logger("smartcity.test").info("hidden")
    logging.getLogger("grpc").info("hidden too")
    get_logger("smartcity.test").warning("shown")
    assert [line["event"] for line in lines(stream)] == ["shown"]


def test_console_format_is_plain_text_when_not_a_terminal(configure: Setup) -> None:
    stream = configure(fmt="console")
    get_logger("smartcity.test").info("pump started", station="cau-do")
    logging.getLogger("nats").error("bus unreachable")

    text = stream.getvalue()
    assert not ANSI_ESCAPE.search(text)
    first, second = text.splitlines()
    assert "pump started" in first
    assert "station=cau-do" in first
    assert "info" in first
    assert "bus unreachable" in second
    assert "error" in second
    with pytest.raises(json.JSONDecodeError):
        json.loads(first)


def test_loggers_created_before_setup_follow_it(configure: Setup) -> None:
    early = get_logger("smartcity.test.early")
    early.info("before")  # no handler of ours yet: this one goes nowhere we read
    stream = configure()
    early.info("after")
    assert [line["event"] for line in lines(stream)] == ["after"]
