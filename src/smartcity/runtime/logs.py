"""Structured logging shared by our code and every library we run.

Our modules log through structlog; nats-py, grpc, asyncio and kopf log through the standard
library. Both end in one stdlib handler whose :class:`structlog.stdlib.ProcessorFormatter`
renders them identically, so an operator reading ``kubectl logs`` (or a log shipper parsing
JSON) sees one format, with the OpenTelemetry trace of the current request on every line.

All enrichment happens in the formatter, not in structlog's own chain: records that come from
the standard library only pass through the formatter, and doing the work in one place keeps
the two kinds of records from drifting apart.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

from smartcity.runtime.config import LoggingSettings

__all__ = ["get_logger", "setup_logging"]


class _PlatformHandler(logging.StreamHandler[TextIO]):
    """Marks the handler :func:`setup_logging` owns, so a second call replaces it instead of
    adding a duplicate (and leaves handlers others installed, such as pytest's, alone)."""


def _add_trace_context(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Stamp the active span's ids in the W3C hex form that tracing back ends search by."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = trace.format_trace_id(context.trace_id)
        event_dict["span_id"] = trace.format_span_id(context.span_id)
    return event_dict


def _add_service(service: str) -> Processor:
    def add(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add


# Identical on every call: loggers cached by structlog keep working after a reconfiguration.
_STRUCTLOG_CHAIN: list[Processor] = [
    structlog.stdlib.filter_by_level,
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.PositionalArgumentsFormatter(),
    structlog.processors.StackInfoRenderer(),
    structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
]


def _route_structlog_to_stdlib() -> None:
    structlog.configure(
        processors=_STRUCTLOG_CHAIN,
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


# At import rather than in setup_logging: a structlog logger caches its configuration on first
# use, and one used before setup_logging ran (at import time, in a library, in a test) must
# still end up in the stdlib handler rather than on structlog's default stdout printer.
_route_structlog_to_stdlib()


def _formatter(settings: LoggingSettings, service: str | None, stream: TextIO) -> logging.Formatter:
    enrich: list[Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace_context,
    ]
    if service:
        enrich.append(_add_service(service))
    enrich.append(structlog.stdlib.ProcessorFormatter.remove_processors_meta)

    # Tracebacks leave out local variables: they hold tokens, passwords and citizens' data.
    render: list[Processor]
    if settings.format == "json":
        render = [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            structlog.processors.JSONRenderer(),
        ]
    else:
        colors = stream.isatty() and "NO_COLOR" not in os.environ
        # The standard library's format, not rich's: rich reads every frame's f_locals to
        # look for its own markers, and on CPython 3.11 that has been seen to leave a
        # dangling reference that crashes the garbage collector later.
        tracebacks = structlog.dev.plain_traceback
        render = [structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=tracebacks)]

    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.ExtraAdder(),
            structlog.contextvars.merge_contextvars,
        ],
        processors=[*enrich, *render],
    )


def setup_logging(
    settings: LoggingSettings,
    *,
    service: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Route structlog and stdlib logging to one handler on the root logger.

    Safe to call again (for instance after the configuration was reloaded): the handler from
    the previous call is replaced, never duplicated. ``stream`` defaults to standard error,
    leaving standard output to programs whose output is data.
    """
    target = stream if stream is not None else sys.stderr
    handler = _PlatformHandler(target)
    handler.setFormatter(_formatter(settings, service, target))

    root = logging.getLogger()
    for existing in [h for h in root.handlers if isinstance(h, _PlatformHandler)]:
        root.removeHandler(existing)
        existing.close()
    root.addHandler(handler)
    root.setLevel(settings.level)
    logging.captureWarnings(True)
    _route_structlog_to_stdlib()


def get_logger(name: str, **initial_values: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger backed by the stdlib logger ``name`` (use the module's
    ``__name__``, so levels can be tuned per package with the stdlib API)."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name, **initial_values)
    return logger
