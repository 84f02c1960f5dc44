"""What the console needs to know: where the four services listen, and the limits that keep
one browser from costing the others anything.

The console has no section in the platform's configuration file; the file still sets its
logging, tracing and gRPC message limits, and the command line sets the rest."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from smartcity.runtime.config import GrpcSettings

__all__ = ["SERVICES", "ConsoleSettings", "Targets", "default_target"]

SERVICES = ("identity", "monitoring", "records", "alerts")
"""The services the console calls, in the order their options are listed."""

_SPECS = {
    "identity": "smartcity.services.identity.app:IDENTITY",
    "monitoring": "smartcity.services.monitoring.app:MONITORING",
    "records": "smartcity.services.records.app:RECORDS",
    "alerts": "smartcity.services.alerts.app:ALERTS",
}


def default_target(service: str) -> str:
    """``127.0.0.1:<port>`` with the port the service listens on by default, read from its
    app spec (imported only when asked: the specs pull in the services' storage code)."""
    module, _, name = _SPECS[service].partition(":")
    spec = getattr(importlib.import_module(module), name)
    return f"127.0.0.1:{spec.default_port}"


@dataclass(frozen=True, slots=True)
class Targets:
    """gRPC ``host:port`` of each service."""

    identity: str
    monitoring: str
    records: str
    alerts: str

    @classmethod
    def defaults(cls, **given: str | None) -> Targets:
        """The targets given, the services' default ports on 127.0.0.1 for the others."""
        return cls(**{name: given.get(name) or default_target(name) for name in SERVICES})


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    targets: Targets
    grpc: GrpcSettings = field(default_factory=GrpcSettings)
    call_timeout_seconds: float = 10.0
    """Deadline of each gRPC call an HTTP request makes."""
    idle_timeout_seconds: float = 12 * 3600
    """A logged-in session with no request and no live stream for this long ends (and is
    logged out at identity). A control-room wall with its live stream open never idles."""
    anonymous_timeout_seconds: float = 600
    """How long a session that never logged in (a login page left open) is kept."""
    max_sessions: int = 10_000
    """Sessions kept at once; the oldest not logged in make room first."""
    max_streams_per_session: int = 4
    """Live streams (`/api/events`, one per browser tab) a session may hold open."""
    stream_queue_size: int = 256
    """Messages waiting for one slow browser tab; beyond it they are dropped and the tab is
    told to re-fetch."""
    keepalive_seconds: float = 15.0
    """A comment line on an idle live stream this often, so proxies keep it open."""
    refresh_margin_seconds: float = 60.0
    """Access tokens are refreshed this long before they expire (at most a third of their
    lifetime)."""
    housekeeping_seconds: float = 5.0
    """How often idle sessions are ended and live sessions' tokens refreshed."""
    login_attempts_per_minute: int = 10
    """Logins one client address may try per minute before the console answers 429."""
    max_body_bytes: int = 16 * 1024
    """The largest request body accepted (logins, comments)."""
    allowed_origins: tuple[str, ...] = ()
    """Origins besides the console's own that may send state-changing requests (a reverse
    proxy publishing the console under another name)."""
