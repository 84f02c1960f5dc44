"""The first run's accounts, made by a short-lived process of their own: the supervisor gets
them back with the passwords made on this run, a second run makes none, and settings the
step refuses come back as the supervisor's own refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartcity.runtime.errors import InvalidArgument
from smartcity.up import seeding
from smartcity.up.seed import ADMIN, OPERATOR


async def test_accounts_are_made_once_in_a_process_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ADMIN.password_env, "city-admin-8e1f2a")
    monkeypatch.delenv(OPERATOR.password_env, raising=False)
    made = await seeding.make_accounts(tmp_path)
    by_name = {account.username: account for account in made}
    assert set(by_name) == {"ioc.admin", "ioc.operator"}
    admin, operator = by_name["ioc.admin"], by_name["ioc.operator"]
    assert (admin.created, admin.generated, admin.password) == (True, False, "city-admin-8e1f2a")
    assert (operator.created, operator.generated) == (True, True)
    assert len(operator.password) >= 12
    assert admin.roles == ADMIN.roles
    assert (tmp_path / "identity.db").is_file()

    again = await seeding.make_accounts(tmp_path)
    assert [(a.username, a.created, a.password) for a in again] == [
        ("ioc.admin", False, ""),
        ("ioc.operator", False, ""),
    ]


async def test_settings_the_step_refuses_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMARTCITY_LOGGING__LEVEL", "shouting")
    with pytest.raises(InvalidArgument, match="SMARTCITY_"):
        await seeding.make_accounts(tmp_path)
