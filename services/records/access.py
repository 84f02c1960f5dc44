"""Who may read and write which records; the one place these rules live.

* Staff (any principal holding roles) read the records of a field where they hold
  ``viewer`` (or a role above it) or ``records_officer``, and write them with
  ``records_officer``.
* The owner of a record reads it when its type's access is ``owner``; a citizen creates
  records of such a type only for itself. Records of a ``public`` type are read by anyone
  authenticated; ``field`` types by staff only.
* A sensitive type (health data) also needs eID level 2 and a login with a second factor
  within ``strong_within`` seconds, for reads and writes alike, and a stated reason to read;
  every such read is audited by the service.

``None`` as the caller means auth is off: everything is allowed, as everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartcity.fields import RecordAccess
from smartcity.runtime.auth import Authenticated
from smartcity.runtime.errors import PermissionDenied
from smartcity.runtime.tokens import Claims, Role
from smartcity.services.records.schemas import TypeInfo

STRONG_LOGIN_SECONDS = 15 * 60


@dataclass(frozen=True)
class AccessPolicy:
    strong_within: float = STRONG_LOGIN_SECONDS

    @property
    def sensitive_login(self) -> Authenticated:
        return Authenticated(min_assurance=2, strong_within=self.strong_within)

    def staff_reads(self, caller: Claims, field: str) -> bool:
        return caller.allows(Role.VIEWER, field) or caller.allows(Role.RECORDS_OFFICER, field)

    def may_read(self, caller: Claims | None, info: TypeInfo, owner_id: str) -> bool:
        """Ownership and roles only; :meth:`check_sensitive` is asked separately."""
        if caller is None or self.staff_reads(caller, info.field):
            return True
        if info.spec.access is RecordAccess.PUBLIC:
            return True
        return info.spec.access is RecordAccess.OWNER and owner_id == caller.sub

    def check_read(self, caller: Claims | None, info: TypeInfo, record_id: str, owner: str) -> None:
        if not self.may_read(caller, info, owner):
            assert caller is not None
            raise PermissionDenied(
                f"{caller.sub} may not read record {record_id}: it belongs to another "
                f"principal, and reading others' {info.name} records needs the viewer or "
                f"records_officer role on field {info.field!r}"
            )
        self.check_sensitive(caller, info)

    def check_write(
        self, caller: Claims | None, info: TypeInfo, owner_id: str, *, creating: bool
    ) -> None:
        if caller is not None and not caller.allows(Role.RECORDS_OFFICER, info.field):
            own = creating and info.spec.access is RecordAccess.OWNER and owner_id == caller.sub
            if not own:
                raise PermissionDenied(
                    f"{caller.sub} may not write {info.name} records: that needs the "
                    f"records_officer role on field {info.field!r}"
                    + (
                        "; a citizen may only create records it owns"
                        if info.spec.access is RecordAccess.OWNER
                        else ""
                    )
                )
        self.check_sensitive(caller, info)

    def check_sensitive(self, caller: Claims | None, info: TypeInfo) -> None:
        if info.spec.sensitive and caller is not None:
            self.sensitive_login.check(caller, None)

    def passes_sensitive(self, caller: Claims | None) -> bool:
        try:
            self.sensitive_login.check(caller, None) if caller is not None else None
        except PermissionDenied:
            return False
        return True
