"""``smartcity serve <service>``: every service starts through one runner, so a bad option
is refused the same way for each, before anything is started."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from smartcity.cli.main import app

SERVICES = ["monitoring", "identity", "records", "alerts"]


@pytest.mark.parametrize("service", SERVICES)
def test_a_storage_url_of_another_database_is_refused_naming_the_setting(service: str) -> None:
    result = CliRunner().invoke(app, ["serve", service, "--store", "mysql://db/city"])
    assert result.exit_code == 2, result.output
    assert f"{service}.store_url" in result.output


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_names_its_default_port(service: str) -> None:
    result = CliRunner().invoke(app, ["serve", service, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "gRPC port; 0 picks a free one (default: grpc.port, else 5005" in result.output
