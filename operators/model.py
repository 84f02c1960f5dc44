"""The specs of the ``SmartCity`` and ``EdgeAgent`` custom resources, as typed models.

These models are the one statement of what a valid spec is: the CRDs' OpenAPI schemas are
generated from them (:mod:`smartcity.operators.crds`), so the API server refuses what a schema
can say, and the operator validates every spec again with the same models before acting on
it, because a CRD installed by an older chart, or a rule no schema can express, must still
end in a clear ``Degraded`` condition rather than in a broken workload.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.alias_generators import to_camel

from smartcity.operators.services import SERVICES, ServiceKind
from smartcity.runtime.errors import InvalidArgument

DEFAULT_IMAGE = "ghcr.io/danang-smartcity/smartcity"
TOKEN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
"""A site or field id: a NATS subject token (docs/architecture.md, "NATS subjects")."""
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
NATS_URL = r"^(nats|tls|ws|wss)://[^,\s]+(,(nats|tls|ws|wss)://[^,\s]+)*$"

Quantity = str | int
"""A Kubernetes quantity (``250m``, ``1Gi``, ``2``): an integer or a string."""


class SpecError(InvalidArgument):
    """A spec that cannot be acted on; each problem names the field and the reason."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class _Spec(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class Image(_Spec):
    repository: str = Field(default=DEFAULT_IMAGE, min_length=1)
    tag: str = Field(default="", description="empty: the operator's own version")
    pull_policy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"
    pull_secrets: list[str] = Field(default_factory=list, description="image pull secret names")


class SecretKey(_Spec):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)


class Resources(_Spec):
    requests: dict[str, Quantity] = Field(
        default_factory=lambda: {"cpu": "100m", "memory": "128Mi"}
    )
    limits: dict[str, Quantity] = Field(default_factory=lambda: {"memory": "512Mi"})


class Logging(_Spec):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "console"] = "json"


class Nats(_Spec):
    url: str | None = Field(
        default=None, pattern=NATS_URL, description="unset: the NATS the chart installed"
    )
    cluster_size: int = Field(
        default=1,
        ge=1,
        le=5,
        description="JetStream servers; streams get min(clusterSize, 3) replicas",
    )
    credentials_secret: SecretKey | None = Field(
        default=None, description="a NATS credentials file (smartcity identity nats-config)"
    )


class Storage(_Spec):
    secret_ref: SecretKey | None = Field(
        default=None,
        description="a PostgreSQL URL (postgresql://user:password@host/db); unset: SQLite "
        "inside each pod, for trials only",
    )


class Telemetry(_Spec):
    otlp_endpoint: str | None = Field(
        default=None, description="OpenTelemetry collector, e.g. http://otel-collector:4317"
    )


class Auth(_Spec):
    mode: Literal["identity", "keys", "off"] = "identity"


class Service(_Spec):
    enabled: bool = True
    replicas: int = Field(default=2, ge=0, le=50)
    resources: Resources = Resources()


def _services_model() -> type[_Spec]:
    def default(kind: ServiceKind) -> Service:
        return Service(enabled=kind.enabled_by_default, replicas=kind.default_replicas)

    fields: dict[str, Any] = {
        name: (Service, Field(default=default(kind), description=kind.description))
        for name, kind in SERVICES.items()
    }
    return create_model("Services", __base__=_Spec, **fields)


Services = _services_model()


class SmartCitySpec(_Spec):
    image: Image = Image()
    nats: Nats = Nats()
    storage: Storage = Storage()
    telemetry: Telemetry = Telemetry()
    auth: Auth = Auth()
    logging: Logging = Logging()
    services: Services = Services()  # type: ignore[valid-type]
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="further settings for every service, as in smartcity's YAML configuration",
    )

    def service(self, name: str) -> Service:
        return getattr(self.services, name)  # type: ignore[no-any-return]


class Toleration(_Spec):
    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class Placement(_Spec):
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)


class ConfigMapRef(_Spec):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)


class Buffer(_Spec):
    claim_name: str | None = Field(
        default=None,
        description="a PersistentVolumeClaim for the disk buffer; unset: an emptyDir, which "
        "survives container restarts but not a move to another node",
    )
    size_limit: str = "1Gi"


class AgentNats(_Spec):
    url: str | None = Field(
        default=None, pattern=NATS_URL, description="unset: the NATS the chart installed"
    )
    credentials_secret: SecretKey | None = None


class EdgeAgentSpec(_Spec):
    site: str = Field(pattern=TOKEN)
    field: str = Field(pattern=TOKEN)
    replicas: int = Field(default=1, ge=0, le=1, description="0 pauses the agent")
    image: Image = Image()
    profiles: list[dict[str, Any]] = Field(
        default_factory=list, description="device profiles, inline"
    )
    profiles_config_map: ConfigMapRef | None = Field(
        default=None, description="a ConfigMap whose every key holds one device profile (YAML)"
    )
    certificates_secret: str | None = Field(
        default=None, description="mounted at /etc/smartcity/certs, for OPC-UA security"
    )
    nats: AgentNats = AgentNats()
    placement: Placement = Placement()
    resources: Resources = Resources()
    buffer: Buffer = Buffer()
    logging: Logging = Logging()


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        where = ".".join(["spec", *(str(part) for part in item["loc"])])
        message = "unknown field" if item["type"] == "extra_forbidden" else item["msg"]
        problems.append(f"{where}: {message}")
    return problems


def parse_smartcity(spec: Any) -> SmartCitySpec:
    """The validated spec, or :class:`SpecError` naming each wrong field."""
    try:
        return SmartCitySpec.model_validate(spec or {})
    except ValidationError as exc:
        raise SpecError(_problems(exc)) from None


def parse_edgeagent(spec: Any) -> EdgeAgentSpec:
    """The validated spec, or :class:`SpecError` naming each wrong field."""
    try:
        parsed = EdgeAgentSpec.model_validate(spec or {})
    except ValidationError as exc:
        raise SpecError(_problems(exc)) from None
    if bool(parsed.profiles) == bool(parsed.profiles_config_map):
        raise SpecError(["spec.profiles: give inline profiles or profilesConfigMap, one of them"])
    return parsed
