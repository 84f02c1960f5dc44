"""Channels from one smartcity process to another's gRPC service.

Every channel carries the caller's trace context (so one trace follows a request across
services), the same message size limit as the servers, keepalive that the servers accept, and
optionally the caller's bearer token.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from smartcity.runtime.config import GrpcSettings
from smartcity.runtime.interceptors import TRACE_FILTER

__all__ = ["channel", "wait_ready"]

# A ping every 30 s, also on idle channels, finds a dead connection before a call does; the
# servers (smartcity.runtime.grpc_server) accept pings down to every 20 s. A restarted
# service is redialled within 10 s rather than grpc's default of up to two minutes.
_CLIENT_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_reconnect_backoff_ms", 10_000),
)


class _BearerToken:
    """Adds ``authorization: Bearer <token>`` to each call's metadata.

    Call credentials would do this too, but grpc sends them only over TLS; inside a cluster
    (or on loopback) traffic may be plaintext and the services still need the token.
    """

    def __init__(self, token: str) -> None:
        self._value = f"Bearer {token}"

    def _with_token(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*tuple(details.metadata or ()))
        if "authorization" not in metadata:
            metadata.add("authorization", self._value)
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
        )


# grpc.aio files an interceptor under the first call kind it implements only, so each kind
# needs an object of its own.
class _UnaryUnaryToken(_BearerToken, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(self._with_token(client_call_details), request)


class _UnaryStreamToken(_BearerToken, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(self._with_token(client_call_details), request)


class _StreamUnaryToken(_BearerToken, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: AsyncIterable[Any],
    ) -> Any:
        return await continuation(self._with_token(client_call_details), request_iterator)


class _StreamStreamToken(_BearerToken, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: AsyncIterable[Any],
    ) -> Any:
        return await continuation(self._with_token(client_call_details), request_iterator)


def _token_interceptors(token: str) -> list[grpc.aio.ClientInterceptor]:
    return [
        _UnaryUnaryToken(token),
        _UnaryStreamToken(token),
        _StreamUnaryToken(token),
        _StreamStreamToken(token),
    ]


def channel(
    target: str,
    *,
    settings: GrpcSettings | None = None,
    token: str | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """Open a channel to ``target`` (``host:port`` or any grpc target string).

    Plaintext unless ``credentials`` (TLS) are given; with TLS the token travels as call
    credentials, otherwise it is added to each call's metadata. ``settings`` supplies the
    message size limit (defaults to the platform's); ``tracer_provider`` defaults to the
    global one. Create it inside the event loop that will use it, and close it when done
    (``async with channel(...) as ch:``).
    """
    limits = settings or GrpcSettings()
    channel_options = (
        ("grpc.max_receive_message_length", limits.max_message_bytes),
        ("grpc.max_send_message_length", limits.max_message_bytes),
        *_CLIENT_OPTIONS,
        *options,
    )
    if token is not None and not token.strip():
        raise ValueError("token must not be empty")
    interceptors: list[grpc.aio.ClientInterceptor] = list(
        aio_client_interceptors(tracer_provider=tracer_provider, filter_=TRACE_FILTER)
    )
    if credentials is not None:
        if token is not None:
            credentials = grpc.composite_channel_credentials(
                credentials, grpc.access_token_call_credentials(token)
            )
        return grpc.aio.secure_channel(
            target, credentials, options=channel_options, interceptors=interceptors
        )
    if token is not None:
        interceptors.extend(_token_interceptors(token))
    return grpc.aio.insecure_channel(target, options=channel_options, interceptors=interceptors)


# The timeout is not only a bound on the wait: it is also each health call's gRPC deadline.
async def wait_ready(
    channel: grpc.aio.Channel,
    timeout: float,  # noqa: ASYNC109
    *,
    service: str = "",
) -> None:
    """Wait until the server reports ``service`` (``""``: the whole server) as SERVING.

    Follows the health ``Watch`` stream rather than polling, and redials when the server is
    not up yet or restarts meanwhile. Raises :class:`TimeoutError` naming the last status seen.
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, not {timeout}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service=service)
    last = "no answer"
    while (remaining := deadline - loop.time()) > 0:
        call = stub.Watch(request, timeout=remaining, wait_for_ready=True)
        try:
            async for response in call:
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                break
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            last = f"UNAVAILABLE ({exc.details()})"
            # The connection broke mid-stream; let grpc's reconnect backoff do the pacing,
            # with a floor so that a server refusing at once cannot make this loop spin.
            await asyncio.sleep(min(0.05, max(deadline - loop.time(), 0)))
        finally:
            call.cancel()
    what = f"service {service!r}" if service else "the server"
    raise TimeoutError(f"{what} was not SERVING within {timeout} s (last status: {last})")
