"""Searches: the query language of ``SearchRecordsRequest`` and which records a caller's
search may see (the types it reads whoever owns them, and those it reads as their owner)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from smartcity.runtime.errors import InvalidArgument
from smartcity.runtime.tokens import Claims
from smartcity.services.records.access import AccessPolicy
from smartcity.services.records.model import Order, SearchQuery
from smartcity.services.records.schemas import TypeInfo, TypeRegistry

MAX_CONDITIONS = 16
_PATH = re.compile(r"[A-Za-z0-9_]{1,64}(\.[A-Za-z0-9_]{1,64}){0,7}")


@dataclass(frozen=True, slots=True)
class Search:
    """A search as asked (see ``SearchRecordsRequest``)."""

    type: str = ""
    owner_id: str = ""
    field: str = ""
    query: str = ""
    updated_from: int | None = None
    updated_before: int | None = None
    order_by: str = ""
    include_deleted: bool = False
    reason: str = ""


def parse_query(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """``path=value`` conditions and bare words of a search query (double quotes group)."""
    try:
        parts = shlex.split(text, posix=True)
    except ValueError as exc:
        raise InvalidArgument(f"query: {exc} (quote values with double quotes)") from None
    if len(parts) > MAX_CONDITIONS:
        raise InvalidArgument(f"query: at most {MAX_CONDITIONS} conditions")
    equals, words = [], []
    for part in parts:
        path, sign, value = part.partition("=")
        if sign:
            if not _PATH.fullmatch(path):
                raise InvalidArgument(
                    f"query: {path[:80]!r} is not a dotted path of property names"
                )
            equals.append((path, value))
        elif part:
            words.append(part)
    return equals, words


def parse_order(text: str) -> tuple[Order, bool]:
    words = text.split()
    if not words:
        return Order.UPDATE_TIME, True
    if len(words) <= 2 and words[0] in Order.__members__.values():
        if len(words) == 1:
            return Order(words[0]), False
        if words[1].lower() in ("asc", "desc"):
            return Order(words[0]), words[1].lower() == "desc"
    raise InvalidArgument(
        f"order_by {text[:80]!r}: use update_time or create_time, optionally with ' desc'"
    )


def scope(
    types: TypeRegistry, policy: AccessPolicy, caller: Claims | None, search: Search
) -> tuple[SearchQuery, list[TypeInfo]] | None:
    """The store query of ``search`` narrowed to what ``caller`` may read, and the types it
    may return; ``None`` when it may read none of them. Sensitive types take part only with
    a reason and the login they need; asked for by name without them, they are refused."""
    equals, words = parse_query(search.query)
    order, descending = parse_order(search.order_by)
    candidates = types.all()
    if search.type:
        candidates = [types.get(search.type)]
    if search.field:
        candidates = [info for info in candidates if info.field == search.field]
    full: set[str] = set()  # readable whoever owns them
    own: set[str] = set()  # readable when the caller owns them
    for info in candidates:
        if info.spec.sensitive and (
            not search.reason.strip() or not policy.passes_sensitive(caller)
        ):
            if search.type:
                policy.check_sensitive(caller, info)
                raise InvalidArgument(
                    f"searching {info.name} records needs a reason (it is audited)"
                )
            continue
        if policy.may_read(caller, info, owner_id=""):
            full.add(info.name)
        elif caller is not None and policy.may_read(caller, info, owner_id=caller.sub):
            own.add(info.name)
    if search.type and not full and not own:
        policy.check_read(caller, candidates[0], "(any)", "")
    if search.owner_id and caller is not None and search.owner_id != caller.sub:
        own = set()
    if not full and not own:
        return None
    query = SearchQuery(
        types=frozenset(full | own),
        owner=search.owner_id or (caller.sub if own and caller is not None else None),
        owner_or_public=bool(own) and not search.owner_id,
        public_types=frozenset(full),
        equals=equals,
        indexed=frozenset(path for info in candidates for path in info.spec.indexed),
        words=words,
        updated_from=search.updated_from,
        updated_before=search.updated_before,
        order=order,
        descending=descending,
        include_deleted=search.include_deleted,
    )
    return query, candidates
