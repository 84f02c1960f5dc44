"""The alerts API on a real gRPC server with tokens: who may do what to which field's alerts,
the acting user taken from the token, and lists narrowed to the fields a caller may view."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from alerts_support import T0, Clock, batch, city_fields, evaluator, install, reading, rule
from google.protobuf.timestamp_pb2 import Timestamp
from token_support import ISSUER, Signer

from smartcity.alerts.v1 import alerts_pb2 as pb
from smartcity.alerts.v1 import alerts_pb2_grpc
from smartcity.common.v1 import common_pb2
from smartcity.runtime.auth import AuthInterceptor
from smartcity.runtime.config import GrpcSettings
from smartcity.runtime.grpc_client import channel
from smartcity.runtime.grpc_server import GrpcServer
from smartcity.runtime.tokens import TokenVerifier
from smartcity.runtime.trust import LocalAuthenticator
from smartcity.services.alerts.server import SERVICE_NAME, servicer
from smartcity.services.alerts.service import AlertsService
from smartcity.services.alerts.store import AlertStore

SIGNER = Signer()


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'alerts.db'}"


@pytest.fixture
async def address(store: AlertStore) -> AsyncIterator[str]:
    await install(store, rule(), rule("frequency_high", metric="frequency", field="electricity"))
    clock = Clock(T0 / 1e6)
    ev = evaluator(store, clock)
    await ev.evaluate([batch([reading("turbidity", 3.0, T0, 1)])])
    await ev.evaluate(
        [batch([reading("frequency", 51.0, T0, 1, unit="Hz")], field="electricity", site="hk")]
    )
    registrations = [servicer(AlertsService(store, city_fields(), ev))]
    verifier = TokenVerifier(SIGNER.key_set(), issuer=ISSUER)
    async with GrpcServer(
        GrpcSettings(port=0),
        registrations,
        service_names=[SERVICE_NAME],
        auth=AuthInterceptor.for_servicers(registrations, LocalAuthenticator(verifier)),
    ) as server:
        yield server.address


def _as(roles: list[str], sub: str = "p-operator-1") -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {SIGNER.sign(sub=sub, roles=roles)}"),)


async def _fingerprints(stub: alerts_pb2_grpc.AlertsServiceStub, who: tuple) -> dict[str, str]:  # type: ignore[type-arg]
    listed = await stub.ListAlerts(pb.ListAlertsRequest(), metadata=who)
    return {a.field: a.fingerprint for a in listed.alerts}


async def test_operators_act_on_their_fields_alerts_as_themselves(address: str) -> None:
    operator = _as(["operator:electricity", "viewer:water_supply"])
    async with channel(address) as connection:
        stub = alerts_pb2_grpc.AlertsServiceStub(connection)
        alerts = await _fingerprints(stub, operator)
        assert set(alerts) == {"electricity", "water_supply"}
        acked = await stub.AcknowledgeAlert(
            pb.AcknowledgeAlertRequest(fingerprint=alerts["electricity"], comment="on it"),
            metadata=operator,
        )
        assert acked.alert.acknowledged_by.id == "p-operator-1"
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.AcknowledgeAlert(
                pb.AcknowledgeAlertRequest(fingerprint=alerts["water_supply"]), metadata=operator
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "operator role on field 'water_supply'" in (refused.value.details() or "")
        assigned = await stub.AssignAlert(
            pb.AssignAlertRequest(fingerprint=alerts["electricity"]), metadata=operator
        )
        assert assigned.alert.assignee.id == "p-operator-1"
        history = await stub.GetAlertHistory(
            pb.GetAlertHistoryRequest(fingerprint=alerts["electricity"]), metadata=operator
        )
        assert [(e.type, e.actor.id) for e in history.events] == [
            (pb.AlertEvent.TYPE_FIRING, ""),
            (pb.AlertEvent.TYPE_ACKNOWLEDGED, "p-operator-1"),
            (pb.AlertEvent.TYPE_ASSIGNED, "p-operator-1"),
        ]


async def test_viewers_see_only_their_fields(address: str) -> None:
    viewer = _as(["viewer:water_supply"], sub="viewer-1")
    async with channel(address) as connection:
        stub = alerts_pb2_grpc.AlertsServiceStub(connection)
        assert set(await _fingerprints(stub, viewer)) == {"water_supply"}
        everything = await _fingerprints(stub, _as(["viewer:*"]))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetAlert(
                pb.GetAlertRequest(fingerprint=everything["electricity"]), metadata=viewer
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        rules = await stub.ListRules(pb.ListRulesRequest(), metadata=viewer)
        assert [r.field for r in rules.rules] == ["water_supply"]


async def test_rules_need_an_engineer_and_silences_an_operator_of_their_field(
    address: str,
) -> None:
    new = pb.Rule(
        id="frequency_low",
        display_name="Frequency below 49.8 Hz",
        field="electricity",
        selector=common_pb2.SeriesSelector(metric="frequency"),
        severity=pb.SEVERITY_CRITICAL,
        threshold=pb.ThresholdCondition(comparison=pb.COMPARISON_LESS, threshold=49.8),
        enabled=True,
    )
    end = Timestamp(seconds=int(T0 / 1e6) + 3600 * 24 * 365 * 10)
    async with channel(address) as connection:
        stub = alerts_pb2_grpc.AlertsServiceStub(connection)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CreateRule(
                pb.CreateRuleRequest(rule=new), metadata=_as(["operator:electricity"])
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        created = await stub.CreateRule(
            pb.CreateRuleRequest(rule=new), metadata=_as(["engineer:electricity"])
        )
        assert (created.rule.version, created.rule.origin) == (1, pb.RULE_ORIGIN_USER)
        mine = pb.Silence(
            matchers=[pb.Matcher(name="field", value="electricity", type=pb.Matcher.TYPE_EQUAL)],
            end_time=end,
        )
        made = await stub.CreateSilence(
            pb.CreateSilenceRequest(silence=mine), metadata=_as(["operator:electricity"])
        )
        assert made.silence.created_by.id == "p-operator-1"
        everyone = pb.Silence(
            matchers=[pb.Matcher(name="site", value="hk", type=pb.Matcher.TYPE_EQUAL)],
            end_time=end,
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CreateSilence(
                pb.CreateSilenceRequest(silence=everyone), metadata=_as(["operator:electricity"])
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
