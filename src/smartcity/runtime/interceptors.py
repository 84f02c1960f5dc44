"""Server interceptors every smartcity gRPC service runs, outermost first.

1. tracing: opentelemetry-instrumentation-grpc's aio interceptor, one SERVER span per call,
   continuing the caller's W3C trace context from the metadata;
2. access log: one line per call with method, peer, status code and duration;
3. errors: :mod:`smartcity.runtime.errors` exceptions become their status codes with their
   message; any other exception becomes ``INTERNAL`` with a reference to the trace (or to a
   logged incident id), so internals never reach the caller but an operator can find them.

Servicer methods must be ``async``. A response-streaming method may be an async generator or
a coroutine that writes with ``context.write``; the error interceptor presents both to the
outer interceptors as async generators, which the tracing interceptor requires.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from typing import Any, NoReturn

import grpc
import grpc.aio
from grpc_reflection.v1alpha import reflection
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

from smartcity.runtime import errors
from smartcity.runtime.logs import get_logger

__all__ = [
    "TRACE_FILTER",
    "AccessLogInterceptor",
    "ErrorInterceptor",
    "invoke",
    "iterate",
    "rewrap",
    "server_interceptors",
    "status_for",
    "tracing_interceptor",
]

_log = get_logger(__name__)

_STATUS_BY_ERROR: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}

# Behaviours as grpc.aio calls them: (request or request iterator, context).
Behavior = Callable[[Any, grpc.aio.ServicerContext], Any]
# Given the handler's inner behaviour and whether its response streams, the replacement.
_Wrap = Callable[[Behavior, bool], Behavior]


def status_for(error: errors.DomainError) -> grpc.StatusCode:
    """The status code for a domain error; a subclass defined by a service maps like its
    nearest base listed here, and an unlisted direct :class:`DomainError` is ``UNKNOWN``."""
    for cls in type(error).__mro__:
        code = _STATUS_BY_ERROR.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.UNKNOWN


def rewrap(handler: grpc.RpcMethodHandler | None, wrap: _Wrap) -> grpc.RpcMethodHandler | None:
    """Rebuild ``handler`` around ``wrap``'s behaviour, keeping its (de)serializers."""
    if handler is None:
        return None
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream, True), **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary, False), **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream, True), **kwargs)
    return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary, False), **kwargs)


async def invoke(behavior: Behavior, request: Any, context: grpc.aio.ServicerContext) -> Any:
    result = behavior(request, context)
    if not isinstance(result, Awaitable):
        raise TypeError(f"servicer method {behavior!r} must be async")
    return await result


async def iterate(
    behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
) -> AsyncIterator[Any]:
    """Iterate an async-generator behaviour, or run one that writes with ``context.write``."""
    result = behavior(request, context)
    if isinstance(result, AsyncGenerator):
        # Closed here rather than whenever it is collected, so the servicer's cleanup (an
        # unsubscribe, say) runs as soon as the call ends.
        async with aclosing(result) as responses:
            async for response in responses:
                yield response
    elif isinstance(result, AsyncIterator):
        async for response in result:
            yield response
    elif isinstance(result, Awaitable):
        await result
    else:
        raise TypeError(f"servicer method {behavior!r} must be async")


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Turns exceptions escaping a servicer into the status the caller should see."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method

        def wrap(behavior: Behavior, response_streaming: bool) -> Behavior:
            if response_streaming:

                async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                    try:
                        async with aclosing(iterate(behavior, request, context)) as responses:
                            async for response in responses:
                                yield response
                    except Exception as exc:
                        await _abort_for(exc, context, method)

                return stream

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    return await invoke(behavior, request, context)
                except Exception as exc:
                    await _abort_for(exc, context, method)

            return unary

        return rewrap(await continuation(handler_call_details), wrap)


async def _abort_for(exc: Exception, context: grpc.aio.ServicerContext, method: str) -> NoReturn:
    if isinstance(exc, grpc.aio.AbortError):
        raise exc  # the servicer aborted the call itself, with its own status
    if isinstance(exc, errors.DomainError):
        code, details = status_for(exc), exc.message
    else:
        span = trace.get_current_span()
        span_context = span.get_span_context()
        if span_context.is_valid:
            reference = f"trace {trace.format_trace_id(span_context.trace_id)}"
        else:
            reference = f"incident {uuid.uuid4().hex}"
        span.record_exception(exc)
        _log.error("unhandled error in servicer", method=method, reference=reference, exc_info=exc)
        code, details = grpc.StatusCode.INTERNAL, f"internal error ({reference})"
    await context.abort(code, details)


class AccessLogInterceptor(grpc.aio.ServerInterceptor):
    """One log line per call. Successful calls log at ``ok_level`` (DEBUG by default, since
    health probes alone would flood INFO), failed ones at ``error_level``."""

    def __init__(self, *, ok_level: int = logging.DEBUG, error_level: int = logging.INFO) -> None:
        self._ok_level = ok_level
        self._error_level = error_level

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        emit = self._emit

        def wrap(behavior: Behavior, response_streaming: bool) -> Behavior:
            if response_streaming:

                async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                    started = time.perf_counter()
                    code = grpc.StatusCode.UNKNOWN
                    try:
                        async with aclosing(iterate(behavior, request, context)) as responses:
                            async for response in responses:
                                yield response
                        code = context.code() or grpc.StatusCode.OK
                    except grpc.aio.AbortError:
                        code = context.code() or grpc.StatusCode.UNKNOWN
                        raise
                    except BaseException as exc:
                        code = _code_of_escape(exc)
                        raise
                    finally:
                        emit(method, context, code, started)

                return stream

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started = time.perf_counter()
                code = grpc.StatusCode.UNKNOWN
                try:
                    response = await invoke(behavior, request, context)
                    code = context.code() or grpc.StatusCode.OK
                    return response
                except grpc.aio.AbortError:
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                except BaseException as exc:
                    code = _code_of_escape(exc)
                    raise
                finally:
                    emit(method, context, code, started)

            return unary

        return rewrap(await continuation(handler_call_details), wrap)

    def _emit(
        self,
        method: str,
        context: grpc.aio.ServicerContext,
        code: grpc.StatusCode,
        started: float,
    ) -> None:
        level = self._ok_level if code == grpc.StatusCode.OK else self._error_level
        _log.log(
            level,
            "grpc call",
            method=method,
            peer=context.peer(),
            code=code.name,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )


def _code_of_escape(exc: BaseException) -> grpc.StatusCode:
    """What grpc reports for an exception that reached it unhandled."""
    if isinstance(exc, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


# Kubernetes probes and grpcurl sessions are not requests worth a trace each; clients use the
# same filter so that waiting for a server's health leaves no half-traces either.
TRACE_FILTER = filters.negate(
    filters.any_of(filters.health_check(), filters.service_name(reflection.SERVICE_NAME))
)


def tracing_interceptor(
    tracer_provider: trace.TracerProvider | None = None,
) -> grpc.aio.ServerInterceptor:
    """OpenTelemetry SERVER spans for every call except health checks and reflection;
    ``tracer_provider`` defaults to the global one."""
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(
        tracer_provider=tracer_provider, filter_=TRACE_FILTER
    )
    return interceptor


def server_interceptors(
    *,
    tracer_provider: trace.TracerProvider | None = None,
    ok_level: int = logging.DEBUG,
    error_level: int = logging.INFO,
) -> Sequence[grpc.aio.ServerInterceptor]:
    """The standard chain, in the order the server must apply it: the span is opened first
    so the access log and error lines carry its trace id, and errors are mapped innermost
    so the access log and the span see the final status code."""
    return (
        tracing_interceptor(tracer_provider),
        AccessLogInterceptor(ok_level=ok_level, error_level=error_level),
        ErrorInterceptor(),
    )
