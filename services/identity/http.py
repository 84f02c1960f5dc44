"""The key set over HTTP, for any JOSE library: ``/.well-known/jwks.json`` (the same set as
``GetJwks`` and the ``keys_rotated`` event) and an OpenID Connect discovery document at
``/.well-known/openid-configuration`` naming it. Served by the identity process with
Starlette on uvicorn, on ``identity.http_port``."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smartcity.runtime.tokens import ALGORITHM
from smartcity.services.identity.issuer import TokenIssuer

JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"
SHUTDOWN_GRACE_SECONDS = 2.0
"""How long a stop waits for open HTTP connections (a client's keep-alive) to finish."""
CACHE = "public, max-age=60"
"""Short: a verifier that meets an unknown key id should find it here within a minute of a
rotation (and may re-read at once on an unknown ``kid``)."""


def discovery(issuer: str, base_url: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "jwks_uri": base_url.rstrip("/") + JWKS_PATH,
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "claims_supported": [
            "iss", "sub", "aud", "iat", "exp", "jti", "kind", "roles", "acr", "amr", "sid",
            "auth_time",
        ],
        "acr_values_supported": ["vneid:1", "vneid:2"],
        "grpc_service": "smartcity.identity.v1.IdentityService",
    }  # fmt: skip


def application(issuer: TokenIssuer, public_url: str | None = None) -> Starlette:
    async def jwks(request: Request) -> Response:
        return JSONResponse(issuer.ring.jwks(), headers={"Cache-Control": CACHE})

    async def openid(request: Request) -> Response:
        base = public_url or str(request.base_url)
        return JSONResponse(discovery(issuer.issuer, base), headers={"Cache-Control": CACHE})

    return Starlette(routes=[Route(JWKS_PATH, jwks), Route(DISCOVERY_PATH, openid)])


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The process's signals belong to the service runtime, which stops this server.
        yield


class HttpEndpoint:
    """The Starlette app on a socket bound at construction, so its port is known before it
    serves."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self._socket.listen(128)
        self._socket.setblocking(False)
        bound = self._socket.getsockname()
        shown = f"[{bound[0]}]" if family == socket.AF_INET6 else bound[0]
        self.url = f"http://{shown}:{bound[1]}"
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        )
        self._server = _Server(config)
        self._serving = False

    async def serve(self) -> None:
        self._serving = True
        try:
            await self._server.serve(sockets=[self._socket])
        finally:
            # Cancelled before uvicorn's own shutdown: the event loop must stop watching the
            # socket before it is closed, or its descriptor number, reused, would be unwatched.
            for server in getattr(self._server, "servers", []):
                server.close()
            self._socket.close()

    def close(self) -> None:
        """Ask the server to stop; it closes its socket as it does (or now, if it never ran)."""
        self._server.should_exit = True
        if not self._serving:
            self._socket.close()
