"""The services a ``SmartCity`` can run: one entry each.

A service added to the platform later is one more entry in :data:`SERVICES`; the CRD schema,
the manifests, the network policy and the printer columns all follow from this table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from smartcity.runtime.config import Settings

GRPC_PORT = 50051
"""Every service listens for gRPC (and ``grpc.health.v1``) on this port inside its pod."""
METRICS_PORT = 9464
"""Every service serves its OpenTelemetry metrics for Prometheus on this port."""


@dataclass(frozen=True)
class ServiceKind:
    """What the operator needs to know to run one service."""

    name: str
    description: str
    enabled_by_default: bool = True
    default_replicas: int = 2
    stores: bool = True
    """Whether the service keeps state in a database named by ``<name>.store_url``."""
    ports: tuple[tuple[str, int], ...] = ()
    """Ports it serves besides gRPC and metrics, by name."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Settings it needs in a cluster, beyond those every service gets."""

    @property
    def command(self) -> list[str]:
        return ["smartcity", "serve", self.name, "--config", "/etc/smartcity/config.yaml"]

    @property
    def store_setting(self) -> str | None:
        """The configuration key of its storage URL, when this version of the platform has
        one (a section appears in :class:`Settings` when its service is built)."""
        if not self.stores:
            return None
        section = Settings.model_fields.get(self.name)
        annotation = section.annotation if section is not None else None
        fields = getattr(annotation, "model_fields", {})
        return f"{self.name}.store_url" if "store_url" in fields else None


SERVICES: dict[str, ServiceKind] = {
    kind.name: kind
    for kind in (
        ServiceKind(
            "identity",
            "principals, login, signed tokens and the key set",
            # /.well-known/jwks.json and openid-configuration, for clients outside NATS.
            ports=(("http", 8053),),
            settings={"identity": {"http_host": "0.0.0.0", "http_port": 8053}},
        ),
        ServiceKind("records", "typed, versioned city records"),
        ServiceKind("monitoring", "telemetry into time series, queries, device health, KPIs"),
        ServiceKind("alerts", "rules on the telemetry stream and the alert lifecycle"),
        ServiceKind(
            "console",
            "the operations dashboard",
            enabled_by_default=False,
            default_replicas=1,
            stores=False,
        ),
    )
}
