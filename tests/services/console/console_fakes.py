"""Stand-ins for the four services' stubs that answer like the real ones: tokens per user,
roles per field, single-use refresh tokens, server streams the tests feed, and refusals with
gRPC status codes (``failures``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio

from smartcity.alerts.v1 import alerts_pb2
from smartcity.common.v1 import common_pb2
from smartcity.identity.v1 import identity_pb2
from smartcity.monitoring.v1 import monitoring_pb2
from smartcity.records.v1 import records_pb2
from smartcity.services.console.backend import Backend
from smartcity.telemetry.v1 import telemetry_pb2

PASSWORD = "correct horse battery staple"

__all__ = ["PASSWORD", "FakeStream", "Services", "alert", "reading", "rpc_error"]


def rpc_error(code: grpc.StatusCode, message: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=message)


def _token_of(metadata: Iterable[tuple[str, str]]) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and value.startswith("Bearer "):
            return value.removeprefix("Bearer ")
    return None


class FakeStream:
    """A server stream: what tests put in comes out, until it is ended or cancelled."""

    def __init__(self, request: Any, token: str | None) -> None:
        self.request = request
        self.token = token
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.cancelled = False

    def __aiter__(self) -> FakeStream:
        return self

    async def __anext__(self) -> Any:
        item = await self.queue.get()
        if item is StopAsyncIteration:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def cancel(self) -> bool:
        self.cancelled = True
        return True


@dataclass
class Services:
    """The four services as stand-ins. ``roles`` per user name; each issued access token
    maps to its user, and every call records the token it carried."""

    roles: dict[str, list[str]] = field(
        default_factory=lambda: {
            "op.an": ["operator:water_supply", "viewer:*"],
            "view.binh": ["viewer:*"],
            "water.chi": ["viewer:water_supply"],
        }
    )
    totp_users: set[str] = field(default_factory=set)
    access_seconds: float = 900
    failures: dict[str, grpc.aio.AioRpcError] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    refresh: dict[str, str] = field(default_factory=dict)
    used_refresh: set[str] = field(default_factory=set)
    calls: list[tuple[str, str | None]] = field(default_factory=list)
    forwarded: dict[str, str | None] = field(default_factory=dict)
    """Each method's last x-forwarded-for: the browser's address, as identity gets it."""
    streams: list[FakeStream] = field(default_factory=list)
    logged_out: list[str] = field(default_factory=list)
    acknowledged: list[tuple[str, str]] = field(default_factory=list)
    silences: list[alerts_pb2.CreateSilenceRequest] = field(default_factory=list)
    issued: int = 0
    site_records: list[records_pb2.Record] | None = None
    """What a search for ``site`` records finds; ``None``: the type is unknown."""

    def backend(self) -> Backend:
        return Backend(identity=self, monitoring=self, records=self, alerts=self, call_timeout=5)

    def _enter(self, method: str, metadata: Any) -> str | None:
        token = _token_of(metadata)
        self.calls.append((method, token))
        self.forwarded[method] = dict(metadata or ()).get("x-forwarded-for")
        if method in self.failures:
            raise self.failures[method]
        return token

    def _user(self, token: str | None) -> str:
        if token is None or token not in self.tokens:
            raise rpc_error(grpc.StatusCode.UNAUTHENTICATED, "token is not valid")
        return self.tokens[token]

    def _may(self, token: str | None, role: str, field: str) -> None:
        user = self._user(token)
        wanted = {
            "viewer": {"viewer", "operator", "engineer"},
            "operator": {"operator", "engineer"},
        }
        for binding in self.roles[user]:
            held, scope = binding.split(":")
            if held in wanted[role] and scope in ("*", field):
                return
        raise rpc_error(grpc.StatusCode.PERMISSION_DENIED, f"needs {role} on {field}")

    def _tokens(self, user: str) -> identity_pb2.TokenSet:
        self.issued += 1
        access, refresh = f"access-{self.issued}", f"refresh-{self.issued}"
        self.tokens[access] = user
        self.refresh[refresh] = user
        tokens = identity_pb2.TokenSet(access_token=access, refresh_token=refresh)
        tokens.access_token_expire_time.FromNanoseconds(
            int((time.time() + self.access_seconds) * 1e9)
        )
        tokens.principal.id = f"p-{user}"
        tokens.principal.display_name = user
        return tokens

    # -- identity -------------------------------------------------------------------------

    async def Login(self, request: Any, metadata: Any = (), **_: Any) -> Any:  # noqa: N802
        self._enter("Login", metadata)
        if request.username not in self.roles or request.password != PASSWORD:
            raise rpc_error(grpc.StatusCode.UNAUTHENTICATED, "invalid credentials")
        if request.username in self.totp_users and request.totp_code != "123456":
            return identity_pb2.LoginResponse(
                totp_challenge=identity_pb2.TotpChallenge(challenge_id=f"ch-{request.username}")
            )
        return identity_pb2.LoginResponse(tokens=self._tokens(request.username))

    async def VerifyTotp(self, request: Any, metadata: Any = (), **_: Any) -> Any:  # noqa: N802
        self._enter("VerifyTotp", metadata)
        if request.totp_code != "123456":
            raise rpc_error(grpc.StatusCode.UNAUTHENTICATED, "invalid credentials")
        user = request.challenge_id.removeprefix("ch-")
        return identity_pb2.VerifyTotpResponse(tokens=self._tokens(user))

    async def RefreshToken(self, request: Any, metadata: Any = (), **_: Any) -> Any:  # noqa: N802
        self._enter("RefreshToken", metadata)
        await asyncio.sleep(0)  # let concurrent refreshes meet here
        if request.refresh_token in self.used_refresh or request.refresh_token not in self.refresh:
            raise rpc_error(grpc.StatusCode.UNAUTHENTICATED, "refresh token already used")
        self.used_refresh.add(request.refresh_token)
        user = self.refresh[request.refresh_token]
        return identity_pb2.RefreshTokenResponse(tokens=self._tokens(user))

    async def Logout(self, request: Any, metadata: Any = (), **_: Any) -> Any:  # noqa: N802
        self._enter("Logout", metadata)
        self.logged_out.append(request.refresh_token)
        return identity_pb2.LogoutResponse()

    async def GetPrincipal(self, request: Any, metadata: Any = (), **_: Any) -> Any:  # noqa: N802
        user = self._user(self._enter("GetPrincipal", metadata))
        bindings = [
            identity_pb2.RoleBinding(role=b.split(":")[0], field=b.split(":")[1])
            for b in self.roles[user]
        ]
        principal = identity_pb2.Principal(
            id=f"p-{user}", username=user, display_name=user.title(), role_bindings=bindings
        )
        return identity_pb2.GetPrincipalResponse(principal=principal)

    # -- monitoring -----------------------------------------------------------------------

    async def ListFields(self, request: Any, metadata: Any = (), **_: Any) -> Any:  # noqa: N802
        self._user(self._enter("ListFields", metadata))
        fields = [
            monitoring_pb2.Field(id="water_supply", pillar=monitoring_pb2.PILLAR_ENVIRONMENT),
            monitoring_pb2.Field(id="traffic", pillar=monitoring_pb2.PILLAR_MOBILITY),
        ]
        return monitoring_pb2.ListFieldsResponse(fields=fields)

    async def GetFieldSummary(self, request: Any, metadata: Any = (), **_: Any) -> Any:  # noqa: N802
        self._may(self._enter("GetFieldSummary", metadata), "viewer", request.field)
        summary = monitoring_pb2.FieldSummary(field=request.field, device_count=1, online_count=1)
        return monitoring_pb2.GetFieldSummaryResponse(summary=summary)

    async def ListDevices(self, request: Any, metadata: Any = (), **_: Any) -> Any:  # noqa: N802
        self._may(self._enter("ListDevices", metadata), "viewer", request.field or "*")
        device = monitoring_pb2.Device(
            field="water_supply",
            site="cau-do",
            device="tb-1",
            state=monitoring_pb2.DEVICE_STATE_ONLINE,
            metrics=["turbidity"],
        )
        return monitoring_pb2.ListDevicesResponse(devices=[device])

    async def GetLatest(self, request: Any, metadata: Any = (), **_: Any) -> Any:  # noqa: N802
        self._may(self._enter("GetLatest", metadata), "viewer", request.selector.field or "*")
        return monitoring_pb2.GetLatestResponse(readings=[reading(1.5)])

    async def QueryRange(self, request: Any, metadata: Any = (), **_: Any) -> Any:  # noqa: N802
        self._may(self._enter("QueryRange", metadata), "viewer", request.selector.field or "*")
        series = monitoring_pb2.Series(field=request.selector.field, metric="turbidity", unit="NTU")
        series.points.add(value=1.0, count=1).time.FromSeconds(int(time.time()) - 60)
        return monitoring_pb2.QueryRangeResponse(series=[series])

    def StreamReadings(self, request: Any, metadata: Any = ()) -> FakeStream:  # noqa: N802
        stream = FakeStream(request, _token_of(metadata))
        self.streams.append(stream)
        return stream

    # -- records --------------------------------------------------------------------------

    async def SearchRecords(self, request: Any, metadata: Any = (), **_: Any) -> Any:  # noqa: N802
        self._user(self._enter("SearchRecords", metadata))
        if self.site_records is None:
            raise rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "unknown record type 'site'")
        return records_pb2.SearchRecordsResponse(records=self.site_records)

    # -- alerts ---------------------------------------------------------------------------

    async def ListAlerts(self, request: Any, metadata: Any = (), **_: Any) -> Any:  # noqa: N802
        self._user(self._enter("ListAlerts", metadata))
        return alerts_pb2.ListAlertsResponse(alerts=[alert("fp-1")], revision=7)

    async def GetAlertHistory(self, request: Any, metadata: Any = (), **_: Any) -> Any:  # noqa: N802
        self._user(self._enter("GetAlertHistory", metadata))
        if request.fingerprint != "fp-1":
            raise rpc_error(grpc.StatusCode.NOT_FOUND, f"no alert {request.fingerprint}")
        event = alerts_pb2.AlertEvent(type=alerts_pb2.AlertEvent.TYPE_FIRING, alert=alert("fp-1"))
        return alerts_pb2.GetAlertHistoryResponse(events=[event])

    async def AcknowledgeAlert(self, request: Any, metadata: Any = (), **_: Any) -> Any:  # noqa: N802
        token = self._enter("AcknowledgeAlert", metadata)
        self._may(token, "operator", "water_supply")
        self.acknowledged.append((request.fingerprint, self.tokens[token or ""]))
        acked = alert(request.fingerprint)
        acked.acknowledged_by.display_name = self.tokens[token or ""]
        return alerts_pb2.AcknowledgeAlertResponse(alert=acked)

    async def UnacknowledgeAlert(self, request: Any, metadata: Any = (), **_: Any) -> Any:  # noqa: N802
        self._may(self._enter("UnacknowledgeAlert", metadata), "operator", "water_supply")
        return alerts_pb2.UnacknowledgeAlertResponse(alert=alert(request.fingerprint))

    async def AssignAlert(self, request: Any, metadata: Any = (), **_: Any) -> Any:  # noqa: N802
        self._may(self._enter("AssignAlert", metadata), "operator", "water_supply")
        assigned = alert(request.fingerprint)
        assigned.assignee.id = request.assignee
        return alerts_pb2.AssignAlertResponse(alert=assigned)

    async def CreateSilence(self, request: Any, metadata: Any = (), **_: Any) -> Any:  # noqa: N802
        self._may(self._enter("CreateSilence", metadata), "operator", "water_supply")
        self.silences.append(request)
        silence = alerts_pb2.Silence(id="s-1", end_time=request.silence.end_time)
        return alerts_pb2.CreateSilenceResponse(silence=silence)

    def WatchAlerts(self, request: Any, metadata: Any = ()) -> FakeStream:  # noqa: N802
        stream = FakeStream(request, _token_of(metadata))
        self.streams.append(stream)
        return stream


def reading(value: float, device: str = "tb-1") -> monitoring_pb2.DeviceReading:
    return monitoring_pb2.DeviceReading(
        field="water_supply",
        site="cau-do",
        device=device,
        reading=telemetry_pb2.Reading(
            metric="turbidity", value=value, unit="NTU", quality=common_pb2.QUALITY_GOOD
        ),
    )


def alert(fingerprint: str) -> alerts_pb2.Alert:
    return alerts_pb2.Alert(
        fingerprint=fingerprint,
        state=alerts_pb2.ALERT_STATE_FIRING,
        severity=alerts_pb2.SEVERITY_WARNING,
        field="water_supply",
        labels={"site": "cau-do", "device": "tb-1", "metric": "turbidity", "alertname": "High"},
        value=3.0,
    )
