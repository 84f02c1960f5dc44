"""``smartcity alerts rules``: list, show, create, enable, disable and delete alert rules.

A rule is created from a JSON file in the protobuf JSON form of ``smartcity.alerts.v1.Rule``;
a rule a field plugin brings can be disabled but not deleted (the service says so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from google.protobuf import json_format
from google.protobuf.field_mask_pb2 import FieldMask
from rich.console import Console
from rich.table import Table

from smartcity.alerts.v1 import alerts_pb2 as pb
from smartcity.cli.alerts_client import (
    DEFAULT_TARGET,
    SEVERITY,
    JsonOption,
    TargetOption,
    TokenOption,
    as_json,
    call,
    echo_json,
)
from smartcity.cli.errors import fail

__all__ = ["rules_app"]

rules_app = typer.Typer(help="The rules alerts come from.", no_args_is_help=True)


@rules_app.command("list")
def rules_list(
    field: Annotated[str, typer.Option("--field", "-f", help="Field id.")] = "",
    everything: Annotated[bool, typer.Option("--all", help="Disabled rules too.")] = False,
    json_output: JsonOption = False,
    target: TargetOption = DEFAULT_TARGET,
    token: TokenOption = None,
) -> None:
    """Rules by field and id."""
    request = pb.ListRulesRequest(field=field, include_disabled=everything)
    rules = call(target, token, "ListRules", request).rules
    if json_output:
        echo_json([as_json(r) for r in rules])
        return
    table = Table("id", "field", "metric", "condition", "severity", "enabled", "origin")
    for r in rules:
        table.add_row(
            r.id,
            r.field,
            r.selector.metric,
            r.WhichOneof("condition") or "",
            SEVERITY.get(r.severity, "?"),
            "yes" if r.enabled else "no",
            pb.RuleOrigin.Name(r.origin).removeprefix("RULE_ORIGIN_").lower(),
        )
    Console().print(table)


@rules_app.command("show")
def rules_show(
    rule_id: str, target: TargetOption = DEFAULT_TARGET, token: TokenOption = None
) -> None:
    """One rule, as JSON."""
    echo_json(as_json(call(target, token, "GetRule", pb.GetRuleRequest(id=rule_id)).rule))


@rules_app.command("create")
def rules_create(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Rule as JSON.")],
    target: TargetOption = DEFAULT_TARGET,
    token: TokenOption = None,
) -> None:
    """Create a rule from a JSON file (``smartcity.alerts.v1.Rule`` in protobuf JSON)."""
    try:
        rule = json_format.Parse(file.read_text(encoding="utf-8"), pb.Rule())
    except (json_format.ParseError, UnicodeDecodeError) as exc:
        fail(f"{file}: not a rule: {exc}", 2)
    created = call(target, token, "CreateRule", pb.CreateRuleRequest(rule=rule)).rule
    typer.echo(f"rule {created.id} created (version {created.version})")


def _enable(rule_id: str, enabled: bool, target: str, token: str | None) -> None:
    request = pb.UpdateRuleRequest(
        rule=pb.Rule(id=rule_id, enabled=enabled), update_mask=FieldMask(paths=["enabled"])
    )
    rule = call(target, token, "UpdateRule", request).rule
    typer.echo(f"rule {rule.id} {'enabled' if rule.enabled else 'disabled'}")


@rules_app.command("enable")
def rules_enable(
    rule_id: str, target: TargetOption = DEFAULT_TARGET, token: TokenOption = None
) -> None:
    """Evaluate a rule again."""
    _enable(rule_id, True, target, token)


@rules_app.command("disable")
def rules_disable(
    rule_id: str, target: TargetOption = DEFAULT_TARGET, token: TokenOption = None
) -> None:
    """Stop evaluating a rule; its open alerts resolve."""
    _enable(rule_id, False, target, token)


@rules_app.command("delete")
def rules_delete(
    rule_id: str, target: TargetOption = DEFAULT_TARGET, token: TokenOption = None
) -> None:
    """Delete a rule made through the API (a plugin's rule can only be disabled)."""
    call(target, token, "DeleteRule", pb.DeleteRuleRequest(id=rule_id))
    typer.echo(f"rule {rule_id} deleted")
