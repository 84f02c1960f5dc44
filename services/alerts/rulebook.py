"""The rules: listed, created, changed and deleted through the API, and the field plugins'
defaults installed at start. Every change is validated first (:meth:`Rule.check`: a bad
rule changes nothing), persisted with a new version, and a change to what a rule evaluates
resolves its open alerts in the same transaction, so they start afresh under the new rule.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from functools import partial

from smartcity.fields import FieldHost
from smartcity.runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from smartcity.runtime.storage.paging import encode_page_token
from smartcity.services.alerts.evaluator import Evaluator
from smartcity.services.alerts.model import Origin, Page, PageRequest, page_key
from smartcity.services.alerts.rules import Rule
from smartcity.services.alerts.store import AlertStore, Writes

__all__ = ["RESETTING", "Rulebook"]

RESETTING = frozenset(
    {"selector", "threshold", "band", "rate_of_change", "no_data", "quality_bad", "for_duration",
     "keep_firing_for", "enabled", "severity"}
)  # fmt: skip


class Rulebook:
    def __init__(self, store: AlertStore, fields: FieldHost, evaluator: Evaluator) -> None:
        self.store = store
        self.fields = fields
        self.evaluator = evaluator

    async def list(self, field: str, include_disabled: bool, page: PageRequest) -> Page[Rule]:
        after = page_key(page, "rules", 2)
        rules = [
            r
            for r in await self.store.rules()
            if (not field or r.field == field)
            and (include_disabled or r.enabled)
            and (after is None or (r.field, r.id) > after)
        ]
        chosen = rules[: page.limit]
        more = len(rules) > page.limit
        token = encode_page_token("rules", [chosen[-1].field, chosen[-1].id]) if more else ""
        return Page(chosen, token)

    async def get(self, rule_id: str) -> Rule:
        rule = await self.store.rule(rule_id)
        if rule is None:
            raise NotFound(f"no rule has id {rule_id!r}")
        return rule

    async def create(self, rule: Rule, request_id: str = "") -> Rule:
        if request_id:
            earlier = await self.store.request("rule", request_id)
            if earlier is not None:
                return await self.get(earlier)
        if not rule.id:
            slug = re.sub(r"[^a-z0-9]+", "_", rule.display_name.lower()).strip("_")[:60]
            rule = rule.changed(id=f"{slug or 'rule'}_{uuid.uuid4().hex[:8]}".lstrip("_0123456789"))
        now = self.evaluator.now()
        rule = rule.changed(origin=Origin.USER, created=now, updated=now, version=1)
        rule.check(self.fields)
        if await self.store.rule(rule.id) is not None:
            raise AlreadyExists(f"a rule with id {rule.id!r} exists")

        async def write(w: Writes) -> None:
            await w.put_rule(rule)
            if request_id:
                await w.put_request("rule", request_id, rule.id)

        async with self.store.transaction() as w:
            await write(w)
        return rule

    async def update(self, changed: Rule, mask: Sequence[str]) -> Rule:
        current = await self.get(changed.id)
        if not mask:
            raise InvalidArgument("update_mask: name the fields to change")
        values: dict[str, object] = {}
        for path in mask:
            if path in ("id", "field", "origin", "create_time", "update_time", "version"):
                raise InvalidArgument(f"update_mask: rule.{path} cannot be changed")
            if path in ("threshold", "band", "rate_of_change", "no_data", "quality_bad"):
                values["condition"] = changed.condition
            elif path == "selector":
                if changed.field != current.field and changed.field:
                    raise InvalidArgument("rule.selector.field: must equal the rule's field")
                values.update(site=changed.site, device=changed.device, metric=changed.metric)
            elif path in _UPDATABLE:
                values[_UPDATABLE[path]] = getattr(changed, _UPDATABLE[path])
            else:
                raise InvalidArgument(f"update_mask: unknown rule field {path!r}")
        rule = current.changed(
            **values, updated=self.evaluator.now(), version=current.version + 1
        ).check(self.fields)
        if RESETTING.intersection(mask):
            await self.evaluator.retire(rule.id, "the rule changed", partial(_put, rule))
        else:
            async with self.store.transaction() as w:
                await w.put_rule(rule)
        return rule

    async def delete(self, rule_id: str) -> None:
        rule = await self.get(rule_id)
        if rule.origin is Origin.PLUGIN:
            raise FailedPrecondition(
                f"rule {rule_id!r} comes from the {rule.field} plugin; disable it instead"
            )

        async def write(w: Writes) -> None:
            await w.delete_rule(rule_id)

        await self.evaluator.retire(rule_id, "the rule was deleted", write)

    async def install_plugin_rules(self, rules: Sequence[Rule]) -> int:
        """Bring the stored plugin rules up to ``rules`` (see :mod:`.defaults`); how many
        were added or changed. Whether a rule is enabled stays what operators chose."""
        changed = 0
        now = self.evaluator.now()
        for rule in rules:
            stored = await self.store.rule(rule.id)
            if stored is None:
                fresh = rule.changed(created=now, updated=now, version=1)
                async with self.store.transaction() as w:
                    await w.put_rule(fresh)
            elif stored.origin is Origin.PLUGIN and _definition(stored) != _definition(rule):
                fresh = rule.changed(
                    enabled=stored.enabled,
                    created=stored.created,
                    updated=now,
                    version=stored.version + 1,
                )
                await self.evaluator.retire(
                    rule.id, "the plugin's rule changed", partial(_put, fresh)
                )
            else:
                continue
            changed += 1
        return changed


_UPDATABLE = {
    "display_name": "display_name",
    "severity": "severity",
    "for_duration": "for_duration",
    "keep_firing_for": "keep_firing_for",
    "labels": "labels",
    "annotations": "annotations",
    "inhibitions": "inhibitions",
    "escalation": "escalation",
    "enabled": "enabled",
}


def _definition(rule: Rule) -> Rule:
    return rule.changed(enabled=True, created=0, updated=0, version=0)


async def _put(rule: Rule, w: Writes) -> None:
    await w.put_rule(rule)
