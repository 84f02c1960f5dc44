"""What ``smartcity up`` decides before anything starts: ports (a taken one named with the
option that moves it), the agents' profiles, the children's environment, the rules and the
record of what was seeded."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smartcity.agents.profile import parse_profile
from smartcity.cli.main import app
from smartcity.runtime.errors import InvalidArgument
from smartcity.up import child_config, processes, profiles, seed
from smartcity.up.plan import SITES, Layout
from smartcity.up.ports import PortTaken, resolve_ports, wanted_ports

HOST = "127.0.0.1"


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind((HOST, 0))
        holder.listen()
        yield holder.getsockname()[1]


def ports(**given: int | None) -> dict[str, int | None]:
    names = ("nats", "console", "grpc_base", "identity_http", "sim_base")
    return {name: given.get(name) for name in names}


def test_fixed_ports_are_the_defaults_and_the_grpc_base_numbers_the_services() -> None:
    wanted = wanted_ports(**ports(), sites=SITES[:2], auto=False, with_console=True)
    by_key = {request.key: request.port for request in wanted}
    assert by_key == {
        "nats": 4222,
        "monitoring": 50051,
        "records": 50052,
        "identity": 50053,
        "alerts": 50054,
        "identity_http": 8053,
        "console": 8080,
        "sim:hoa-khanh-110kv": 5020,
        "sim:lien-chieu-110kv": 5021,
    }


def test_auto_picks_distinct_free_ports_but_keeps_a_given_one(taken_port: int) -> None:
    with socket.socket() as free:
        free.bind((HOST, 0))
        console = free.getsockname()[1]
    wanted = wanted_ports(**ports(console=console), sites=SITES, auto=True, with_console=True)
    chosen = resolve_ports(HOST, wanted)
    assert chosen["console"] == console
    assert len(set(chosen.values())) == len(wanted)
    assert 4222 not in chosen.values()
    for port in chosen.values():
        with socket.socket() as probe:
            probe.bind((HOST, port))


def _free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


@pytest.fixture
def taken_third_port() -> Iterator[int]:
    """A port held here whose two predecessors are free, for a gRPC base two below it: a
    port picked by the kernel may have neighbours other processes hold, so look again."""
    for _ in range(50):
        with socket.socket() as holder:
            holder.bind((HOST, 0))
            holder.listen()
            port = holder.getsockname()[1]
            if all(_free(port - n) for n in (1, 2)):
                yield port
                return
    pytest.fail("no free port with two free ports below it")


def test_a_taken_port_is_one_line_naming_it_and_its_option(taken_third_port: int) -> None:
    taken_port = taken_third_port
    wanted = wanted_ports(
        **ports(grpc_base=taken_port - 2), sites=(), auto=True, with_console=False
    )
    with pytest.raises(PortTaken) as taken:
        resolve_ports(HOST, wanted)
    assert str(taken.value) == (
        f"port {taken_port} (identity gRPC) is taken on {HOST}: choose another with "
        "--grpc-port, or use --ports auto"
    )


def test_one_port_for_two_things_is_refused() -> None:
    wanted = wanted_ports(
        **ports(nats=45123, console=45123), sites=(), auto=True, with_console=True
    )
    with pytest.raises(PortTaken, match="port 45123 is wanted for both NATS and console"):
        resolve_ports(HOST, wanted)


def test_up_reports_a_taken_port_before_starting_anything(tmp_path: Path, taken_port: int) -> None:
    result = CliRunner().invoke(
        app, ["up", "--data-dir", str(tmp_path / "city"), "--nats-port", str(taken_port)]
    )
    assert result.exit_code == 1
    assert f"port {taken_port} (NATS) is taken" in result.output
    assert "--nats-port" in result.output
    assert sorted(p.name for p in (tmp_path / "city").iterdir()) == ["up.lock"]


def test_up_refuses_an_unknown_ports_mode(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["up", "--data-dir", str(tmp_path), "--ports", "some"])
    assert result.exit_code == 2
    assert "--ports must be one of fixed, auto, 0" in result.output


def test_simulated_sites_are_read_with_their_fields_templates(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    substation, water = SITES[0], SITES[2]
    document = profiles.simulated_profile(substation, layout, "tcp://127.0.0.1:5020")
    profile = parse_profile(document)
    assert (profile.site, profile.device, profile.field) == (
        "hoa-khanh-110kv",
        "t1-bay-22kv",
        "electricity",
    )
    assert {"voltage_an", "frequency"} <= {point.name for point in profile.points}
    files = profiles.write_profile(substation, layout, document)
    assert files.profiles == (tmp_path / "agents" / "hoa-khanh-110kv" / "t1-bay-22kv.yaml",)
    assert files.plan == profiles.planned_devices(substation).plan
    document = profiles.simulated_profile(water, layout, "opc.tcp://127.0.0.1:4840/station")
    security = document["security"]
    assert security["cert"] == str(tmp_path / "sim" / "cau-do-water" / "certs" / "agent.der")
    assert security["trusted_servers"] == str(tmp_path / "sim" / "cau-do-water" / "trusted-servers")


def test_an_air_profile_of_another_field_is_refused(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    air = next(site for site in SITES if site.simulator == "air")
    written = layout.sim_dir(air.id) / processes.AIR_PROFILE
    written.parent.mkdir(parents=True)
    written.write_text("site: x\nfield: water_supply\n")
    with pytest.raises(InvalidArgument, match="field 'water_supply', not 'environment'"):
        profiles.simulated_profile(air, layout, "tcp://127.0.0.1:5024")


def test_children_keep_the_environment_but_what_their_file_sets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMARTCITY_NATS__URL", "nats://elsewhere:4222")
    monkeypatch.setenv("SMARTCITY_NATS__USER", "someone")
    monkeypatch.setenv("SMARTCITY_LOGGING__FORMAT", "json")
    monkeypatch.setenv("SMARTCITY_CONFIG", "/etc/city.yaml")
    monkeypatch.setenv("SMARTCITY_ADMIN_PASSWORD", "secret-of-up")
    env = child_config.child_environment({"nats": {"url": "nats://127.0.0.1:1"}})
    assert env["SMARTCITY_LOGGING__FORMAT"] == "json"
    assert env["PYTHONUNBUFFERED"] == "1"
    for gone in (
        "SMARTCITY_NATS__URL",
        "SMARTCITY_NATS__USER",
        "SMARTCITY_CONFIG",
        "SMARTCITY_ADMIN_PASSWORD",
    ):
        assert gone not in env


def test_the_rules_watch_each_substation_and_the_air_station() -> None:
    rules = seed.city_rules(SITES, air_metrics=["pm2_5", "pm10"])
    by_site: dict[str, list[str]] = {}
    for rule in rules:
        by_site.setdefault(rule.selector.site, []).append(rule.selector.metric)
    assert sorted(by_site["hoa-khanh-110kv"]) == sorted(
        ["voltage_an", "voltage_an", "voltage_bn", "voltage_bn", "voltage_cn", "voltage_cn"]
    )
    assert by_site["son-tra-air"] == ["pm2_5"]
    assert "cau-do-water" not in by_site  # the plugin's turbidity rule covers it
    # The band is taken around the busbar's 23 kV setpoint (phase: 23 / sqrt(3) = 13.279 kV),
    # so a healthy bus is well inside it, and a sag to 70..80 % is well outside.
    low = next(r for r in rules if r.id == "hoa_khanh_110kv_voltage_an_low")
    high = next(r for r in rules if r.id == "hoa_khanh_110kv_voltage_an_high")
    assert round(low.threshold.threshold, 3) == 12.615
    assert round(high.threshold.threshold, 3) == 13.943
    assert seed.city_rules(SITES, air_metrics=["no2"])[-1].selector.site != "son-tra-air"


def test_what_was_seeded_is_remembered(tmp_path: Path) -> None:
    path = tmp_path / "seeded.json"
    state = seed.SeedState.load(path)
    assert state.first_run
    state.accounts = ["ioc.admin"]
    state.city = True
    state.save()
    again = seed.SeedState.load(path)
    assert (again.first_run, again.city) == (False, True)
    path.write_text("{not json")
    with pytest.raises(InvalidArgument, match="remove it to seed again"):
        seed.SeedState.load(path)
