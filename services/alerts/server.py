"""The alerts gRPC API: protobuf in and out, and the permission of each RPC.

Everything the service decides lives in :mod:`.service`; conversions live in
:mod:`.messages`, and what a handler reads from its request (pages, ids, matchers) in
:mod:`.requests`. Who may ask (enforced by the runtime's ``AuthInterceptor``, and by the
checks of :mod:`.access` once a handler knows the field):

* rule edits need ``engineer`` on the rule's field;
* acknowledge, unacknowledge and assign need ``operator`` on the alert's field: the request
  names only a fingerprint, so the interceptor asks for ``operator`` on some field and the
  handler checks the alert's own field;
* a silence needs ``operator`` on the field its ``field`` matcher names (equality), or on
  every field otherwise;
* reads need ``viewer``: on the field a request names, else on any field, and the answer is
  narrowed to the fields the caller may view.

The acting user is the token's subject; with auth off it is ``anonymous``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from smartcity.alerts.v1 import alerts_pb2 as pb
from smartcity.alerts.v1 import alerts_pb2_grpc
from smartcity.common.v1 import common_pb2
from smartcity.runtime.auth import Requires, permission, principal
from smartcity.runtime.errors import InvalidArgument
from smartcity.runtime.grpc_server import Registration
from smartcity.runtime.tokens import WILDCARD_FIELD, Role
from smartcity.services.alerts import messages as m
from smartcity.services.alerts.access import require, rule_field, silence_field, user, viewable
from smartcity.services.alerts.model import Alert, MatchType, matches_all
from smartcity.services.alerts.requests import (
    MAX_ID,
    alert_filter,
    checked_matchers,
    page_offset,
    page_request,
    page_response,
    request_id,
)
from smartcity.services.alerts.service import AlertsService

__all__ = ["DEFAULT_PORT", "MAX_ID", "SERVICE_NAME", "AlertsServicer", "servicer"]

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AlertsService"].full_name
DEFAULT_PORT = 50054


class AlertsServicer(alerts_pb2_grpc.AlertsServiceServicer):
    def __init__(self, service: AlertsService) -> None:
        self.service = service

    # -- rules ------------------------------------------------------------------------------

    @permission(Requires(Role.VIEWER, field=lambda r: r.field))
    async def ListRules(self, request: pb.ListRulesRequest, context: Any) -> pb.ListRulesResponse:  # noqa: N802
        page = await self.service.rules.list(
            request.field, request.include_disabled, page_request(request.page)
        )
        allowed = viewable(principal(), self.service.fields)
        rules = [r for r in page.items if allowed is None or r.field in allowed]
        return pb.ListRulesResponse(
            rules=[m.rule_message(r) for r in rules], page=page_response(page)
        )

    @permission(Requires(Role.VIEWER))
    async def GetRule(self, request: pb.GetRuleRequest, context: Any) -> pb.GetRuleResponse:  # noqa: N802
        rule = await self.service.rules.get(request.id)
        require(Role.VIEWER, rule.field)
        return pb.GetRuleResponse(rule=m.rule_message(rule))

    @permission(Requires(Role.ENGINEER, field=rule_field))
    async def CreateRule(  # noqa: N802
        self, request: pb.CreateRuleRequest, context: Any
    ) -> pb.CreateRuleResponse:
        rule = m.rule_from_message(request.rule)
        created = await self.service.rules.create(rule, request_id(request.request_id))
        return pb.CreateRuleResponse(rule=m.rule_message(created))

    @permission(Requires(Role.ENGINEER, field=rule_field))
    async def UpdateRule(  # noqa: N802
        self, request: pb.UpdateRuleRequest, context: Any
    ) -> pb.UpdateRuleResponse:
        current = await self.service.rules.get(request.rule.id)
        require(Role.ENGINEER, current.field)
        message = pb.Rule()
        message.CopyFrom(request.rule)
        message.field = current.field  # immutable; the mask cannot name it
        rule = m.rule_from_message(message)
        updated = await self.service.rules.update(rule, list(request.update_mask.paths))
        return pb.UpdateRuleResponse(rule=m.rule_message(updated))

    @permission(Requires(Role.ENGINEER))
    async def DeleteRule(  # noqa: N802
        self, request: pb.DeleteRuleRequest, context: Any
    ) -> pb.DeleteRuleResponse:
        rule = await self.service.rules.get(request.id)
        require(Role.ENGINEER, rule.field)
        await self.service.rules.delete(rule.id)
        return pb.DeleteRuleResponse()

    # -- alerts -----------------------------------------------------------------------------

    @permission(Requires(Role.VIEWER, field=lambda r: r.field))
    async def ListAlerts(  # noqa: N802
        self, request: pb.ListAlertsRequest, context: Any
    ) -> pb.ListAlertsResponse:
        wanted = alert_filter(request)
        page, revision = await self.service.list_alerts(
            wanted,
            checked_matchers(request.matchers),
            include_silenced=request.include_silenced,
            include_inhibited=request.include_inhibited,
            fields=viewable(principal(), self.service.fields),
            page=page_request(request.page),
        )
        return pb.ListAlertsResponse(
            alerts=[m.alert_message(a) for a in page.items],
            page=page_response(page),
            revision=revision,
        )

    @permission(Requires(Role.VIEWER))
    async def GetAlert(self, request: pb.GetAlertRequest, context: Any) -> pb.GetAlertResponse:  # noqa: N802
        alert = await self.service.get_alert(request.fingerprint)
        require(Role.VIEWER, alert.field)
        return pb.GetAlertResponse(alert=m.alert_message(alert))

    @permission(Requires(Role.VIEWER))
    async def GetAlertHistory(  # noqa: N802
        self, request: pb.GetAlertHistoryRequest, context: Any
    ) -> pb.GetAlertHistoryResponse:
        alert = await self.service.get_alert(request.fingerprint)
        require(Role.VIEWER, alert.field)
        page = await self.service.history(alert.fingerprint, page_request(request.page))
        return pb.GetAlertHistoryResponse(
            events=[m.event_message(e) for e in page.items], page=page_response(page)
        )

    async def _operate(self, fingerprint: str) -> Alert:
        alert = await self.service.get_alert(fingerprint)
        require(Role.OPERATOR, alert.field)
        return alert

    @permission(Requires(Role.OPERATOR))
    async def AcknowledgeAlert(  # noqa: N802
        self, request: pb.AcknowledgeAlertRequest, context: Any
    ) -> pb.AcknowledgeAlertResponse:
        alert = await self._operate(request.fingerprint)
        alert = await self.service.acknowledge(alert.fingerprint, user(), request.comment)
        return pb.AcknowledgeAlertResponse(alert=m.alert_message(alert))

    @permission(Requires(Role.OPERATOR))
    async def UnacknowledgeAlert(  # noqa: N802
        self, request: pb.UnacknowledgeAlertRequest, context: Any
    ) -> pb.UnacknowledgeAlertResponse:
        alert = await self._operate(request.fingerprint)
        alert = await self.service.unacknowledge(alert.fingerprint, user(), request.comment)
        return pb.UnacknowledgeAlertResponse(alert=m.alert_message(alert))

    @permission(Requires(Role.OPERATOR))
    async def AssignAlert(  # noqa: N802
        self, request: pb.AssignAlertRequest, context: Any
    ) -> pb.AssignAlertResponse:
        alert = await self._operate(request.fingerprint)
        assignee: str | None = request_id(request.assignee) or user() or "anonymous"
        if request.assignee == "-":
            assignee = None
        alert = await self.service.assign(alert.fingerprint, assignee, user(), request.comment)
        return pb.AssignAlertResponse(alert=m.alert_message(alert))

    @permission(Requires(Role.VIEWER, field=lambda r: r.field))
    async def ListAlertGroups(  # noqa: N802
        self, request: pb.ListAlertGroupsRequest, context: Any
    ) -> pb.ListAlertGroupsResponse:
        groups = await self.service.groups(
            list(request.group_by), request.field, checked_matchers(request.matchers)
        )
        allowed = viewable(principal(), self.service.fields)
        if allowed is not None:
            groups = [g for g in groups if all(a.field in allowed for a in g.alerts)]
        page = page_request(request.page)
        start = page_offset(page)
        chosen = groups[start : start + page.limit]
        more = start + page.limit < len(groups)
        return pb.ListAlertGroupsResponse(
            groups=[
                pb.AlertGroup(
                    labels=g.labels,
                    alerts=[m.alert_message(a) for a in g.alerts],
                    max_severity=int(g.max_severity),
                    unhandled_count=g.unhandled,
                )
                for g in chosen
            ],
            page=common_pb2.PageResponse(next_page_token=str(start + page.limit) if more else ""),
        )

    # -- silences ---------------------------------------------------------------------------

    @permission(Requires(Role.OPERATOR, field=silence_field))
    async def CreateSilence(  # noqa: N802
        self, request: pb.CreateSilenceRequest, context: Any
    ) -> pb.CreateSilenceResponse:
        silence = m.silence_from_message(request.silence)
        created = await self.service.create_silence(silence, user(), request_id(request.request_id))
        return pb.CreateSilenceResponse(
            silence=m.silence_message(created, self.service.evaluator.now())
        )

    @permission(Requires(Role.VIEWER))
    async def ListSilences(  # noqa: N802
        self, request: pb.ListSilencesRequest, context: Any
    ) -> pb.ListSilencesResponse:
        states = [m.SILENCE_STATES.get(number, "") for number in request.states]
        if "" in states:
            raise InvalidArgument("states: not a silence state")
        now = self.service.evaluator.now()
        silences = await self.service.list_silences(states)
        page = page_request(request.page)
        start = page_offset(page)
        chosen = silences[start : start + page.limit]
        more = start + page.limit < len(silences)
        return pb.ListSilencesResponse(
            silences=[m.silence_message(s, now) for s in chosen],
            page=common_pb2.PageResponse(next_page_token=str(start + page.limit) if more else ""),
        )

    @permission(Requires(Role.OPERATOR))
    async def ExpireSilence(  # noqa: N802
        self, request: pb.ExpireSilenceRequest, context: Any
    ) -> pb.ExpireSilenceResponse:
        for silence in await self.service.list_silences(["pending", "active", "expired"]):
            if silence.id == request.id:
                field = next(
                    (
                        x.value
                        for x in silence.matchers
                        if x.name == "field" and x.type is MatchType.EQUAL
                    ),
                    WILDCARD_FIELD,
                )
                require(Role.OPERATOR, field)
        expired = await self.service.expire_silence(request.id)
        return pb.ExpireSilenceResponse(
            silence=m.silence_message(expired, self.service.evaluator.now())
        )

    # -- the feed ---------------------------------------------------------------------------

    @permission(Requires(Role.VIEWER, field=lambda r: r.field))
    async def WatchAlerts(  # noqa: N802
        self, request: pb.WatchAlertsRequest, context: Any
    ) -> AsyncIterator[pb.WatchAlertsResponse]:
        matchers = checked_matchers(request.matchers)
        floor = m.severity_of(request.min_severity)
        allowed = viewable(principal(), self.service.fields)
        async for event in self.service.watch(request.since_revision):
            alert = event.alert
            if (
                (not request.field or alert.field == request.field)
                and (floor is None or alert.severity >= floor)
                and (allowed is None or alert.field in allowed)
                and matches_all(matchers, alert.labels)
            ):
                yield pb.WatchAlertsResponse(event=m.event_message(event))


def servicer(service: AlertsService) -> Registration:
    return (alerts_pb2_grpc.add_AlertsServiceServicer_to_server, AlertsServicer(service))
