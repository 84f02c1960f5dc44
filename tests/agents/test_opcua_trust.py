"""The OPC-UA server is authenticated: its certificate against a trust folder, or trusted on
first use when the profile says so; and reconnecting to a server that accepts sessions but
refuses subscriptions is paced by the breaker, counted in sessions on the server."""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import pytest_asyncio
import yaml
from cryptography import x509
from loop_fixtures import reading
from opcua_fixtures import USERS, Pki, make_pki, profile_for, station_for, trust
from support import Collector, eventually

from smartcity.agents.opcua.certificates import certificate_der
from smartcity.agents.opcua.driver import OpcuaConnectError, OpcuaDriver
from smartcity.agents.opcua.trust import first_use_file
from smartcity.agents.profile import ProfileError, load_profile, parse_profile
from smartcity.agents.reading import Quality
from smartcity.agents.resilience import Backoff, CircuitBreaker
from smartcity.agents.sim.water_station import CERT_FILE, KEY_FILE, WaterStation

in_module_loop = pytest.mark.asyncio(loop_scope="module")


class Ceiling(random.Random):
    """Full jitter that always draws its ceiling, so back-off delays are exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def station(pki: Pki):
    async with station_for(pki) as running_station:
        yield running_station


def security(pki: Pki, **extra: object) -> dict:
    return {
        "policy": "Basic256Sha256",
        "mode": "SignAndEncrypt",
        "cert": pki.agent_cert.name,
        "key": pki.agent_key.name,
        "username": "operator",
        "password": USERS["operator"],
        **extra,
    }


def station_certificate(station: WaterStation) -> x509.Certificate:
    assert station.certificate_dir is not None
    return x509.load_der_x509_certificate((station.certificate_dir / CERT_FILE).read_bytes())


def sha1(station: WaterStation) -> str:
    """The thumbprint as OPC-UA tools show it, computed here from the DER file."""
    assert station.certificate_dir is not None
    return hashlib.sha1((station.certificate_dir / CERT_FILE).read_bytes()).hexdigest().upper()


@in_module_loop
async def test_a_server_in_the_trust_folder_is_accepted(station, pki):
    folder = pki.folder / "plant-servers"
    trust(station, folder)
    driver = OpcuaDriver(
        profile_for(station, pki, security=security(pki, trusted_servers=str(folder)))
    )
    try:
        readings = await driver.read_once()
    finally:
        await driver.close()
    assert all(r.quality is Quality.GOOD for r in readings)
    assert driver.server_identity is not None
    assert driver.server_identity.thumbprint == sha1(station)
    assert driver.server_identity.trusted_by == f"trust list {folder}"
    assert not driver.server_identity.first_use


@in_module_loop
async def test_an_untrusted_server_is_refused_before_the_password_is_sent(station, pki):
    folder = pki.folder / "nobody-trusted"
    folder.mkdir()
    shutil.copy(pki.stranger_cert, folder / "some-other-server.der")  # a list, not this one
    profile = profile_for(station, pki, security=security(pki, trusted_servers=folder.name))
    assert profile.security.trusted_servers == folder  # relative to the profile
    sessions = station.sessions
    driver = OpcuaDriver(profile)
    with pytest.raises(OpcuaConnectError) as refused:
        await driver.connect()
    message = str(refused.value)
    assert f"{station.url} presents a certificate that is not trusted" in message
    assert f"thumbprint {sha1(station)}" in message
    assert f"subject {station_certificate(station).subject.rfc4514_string()}" in message
    assert f"put its certificate in {folder}" in message
    assert station.sessions == sessions  # never activated: the credentials were not sent
    readings = await driver.read_once()
    assert {r.quality for r in readings} == {Quality.BAD}
    assert all("is not trusted" in r.reason for r in readings)
    assert driver.server_identity is None


@in_module_loop
async def test_the_default_trust_folder_is_beside_the_profile(station, pki, tmp_path):
    shutil.copy(pki.agent_cert, tmp_path / "agent.der")
    shutil.copy(pki.agent_key, tmp_path / "agent.pem")
    path = tmp_path / "station.yaml"
    path.write_text(
        "site: cau-do\nfield: water_supply\ndevice: station-1\nprotocol: opcua\n"
        f"endpoint: {station.url}\n"
        "security: {policy: Basic256Sha256, mode: Sign, cert: agent.der, key: agent.pem,\n"
        f"           username: operator, password: {USERS['operator']}}}\n"
        f"points: [{{name: ph, node: '{station.node_id('pH')}'}}]\n",
        encoding="utf-8",
    )
    profile = load_profile(path)
    assert profile.security.trusted_servers == tmp_path / "trusted-servers"
    driver = OpcuaDriver(profile)
    with pytest.raises(OpcuaConnectError, match=r"\(the folder does not exist yet\)"):
        await driver.connect()
    trust(station, tmp_path / "trusted-servers")
    (reading,) = await driver.read_once()
    await driver.close()
    assert reading.quality is Quality.GOOD


@in_module_loop
async def test_a_pinned_certificate_is_named_when_it_does_not_match(station, pki):
    profile = profile_for(
        station, pki, security=security(pki, mode="Sign", server_cert=pki.agent_cert.name)
    )
    with pytest.raises(OpcuaConnectError, match="other than the pinned server_cert"):
        await OpcuaDriver(profile).connect()


@in_module_loop
async def test_trust_on_first_use_stores_the_first_and_refuses_a_changed_one(pki, tmp_path):
    folder = tmp_path / "tofu"
    async with station_for(pki, certificate_dir=tmp_path / "station") as station:
        profile = profile_for(
            station,
            pki,
            security=security(pki, trusted_servers=str(folder), trust_on_first_use=True),
        )
        first = OpcuaDriver(profile)
        assert all(r.quality is Quality.GOOD for r in await first.read_once())
        await first.close()
        stored = first_use_file(folder, station.url)
        assert stored.parent == folder
        assert stored.read_bytes() == certificate_der(station_certificate(station))
        assert first.server_identity is not None
        assert first.server_identity.first_use
        assert first.server_identity.trusted_by == f"trust on first use: stored as {stored}"
        original = sha1(station)

        again = OpcuaDriver(profile)  # the stored certificate is now on the trust list
        assert all(r.quality is Quality.GOOD for r in await again.read_once())
        await again.close()
        assert again.server_identity is not None
        assert not again.server_identity.first_use

        # the station comes back with another certificate (replaced, or an impostor)
        await station.stop()
        for name in (CERT_FILE, KEY_FILE):
            (tmp_path / "station" / name).unlink()
        await station.start()
        assert sha1(station) != original
        sessions = station.sessions
        changed = OpcuaDriver(profile)
        with pytest.raises(OpcuaConnectError) as refused:
            await changed.connect()
        message = str(refused.value)
        assert f"{station.url} changed its certificate" in message
        assert f"now presents thumbprint {sha1(station)}" in message
        assert f"first trusted with thumbprint {original}" in message
        assert re.search(rf"put its new certificate in {re.escape(str(folder))}", message)
        assert station.sessions == sessions
        assert stored.read_bytes() != certificate_der(station_certificate(station))  # kept


def test_trust_options_that_contradict_are_refused_at_load_time():
    base = {
        "site": "cau-do",
        "field": "water_supply",
        "device": "station-1",
        "protocol": "opcua",
        "endpoint": "opc.tcp://127.0.0.1:4840/station",
        "points": [{"name": "ph", "node": "ns=2;s=Station1.pH"}],
    }
    secure = {"policy": "Basic256Sha256", "mode": "Sign", "cert": "a.der", "key": "a.pem"}
    cases = [
        ({"policy": "None", "mode": "None", "trust_on_first_use": True}, "policy None has no"),
        ({**secure, "server_cert": "s.der", "trust_on_first_use": True}, "give one of them"),
        ({**secure, "trust_on_first_use": "sometimes"}, "trust_on_first_use"),
    ]
    for given, reason in cases:
        with pytest.raises(ProfileError, match=reason):
            parse_profile({**base, "security": given})
    assert not parse_profile({**base, "security": secure}).security.trust_on_first_use


# -- reconnects are paced -------------------------------------------------------------------------


@in_module_loop
async def test_a_server_refusing_subscriptions_gets_paced_sessions(pki):
    async with station_for(pki) as station:
        await station.inject("no_subscriptions", 60)
        breaker = CircuitBreaker(
            threshold=3, backoff=Backoff(initial=0.2, maximum=1.0, rng=Ceiling())
        )
        driver = OpcuaDriver(profile_for(station, pki, mode="subscribe"))
        sink = Collector()
        before = station.sessions
        started = time.monotonic()
        async with reading(driver, sink, breaker=breaker):
            # four back-off delays: 0.2 + 0.4 + 0.8 + 1.0 s after three quick failures
            await eventually(lambda: breaker.backoff.attempt >= 4, within=15, what="back-off")
            elapsed = time.monotonic() - started
            opened = station.sessions - before
            assert elapsed >= 0.2 + 0.4 + 0.8
            # three tries within the threshold, one probe per back-off delay, one in flight
            assert opened <= 3 + 4 + 1, f"{opened} sessions in {elapsed:.1f} s"
            reasons = {r.reason for r in sink.readings()}
            assert any("BadTooManySubscriptions" in reason for reason in reasons), reasons
            assert {r.quality for r in sink.readings()} == {Quality.BAD}

            await station.inject("clear", 1)
            cleared = time.monotonic()
            await sink.wait_for(lambda: sink.all_good(["ph"], since=cleared), "recovery")
            assert breaker.backoff.attempt == 0  # closed by the data, not by the session


# -- on the command line -----------------------------------------------------------------------

SMARTCITY = [sys.executable, "-m", "smartcity.cli.main"]
ENV = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1"}


def smartcity(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SMARTCITY, *args], capture_output=True, text=True, timeout=60, env=ENV)


def test_sim_opcua_is_trusted_and_check_shows_the_server_and_first_use(tmp_path):
    out = tmp_path / "sim"
    process = subprocess.Popen(
        [*SMARTCITY, "sim", "opcua", "--port", "0", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        ready = ""
        while "profile:" not in ready and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            ready += line
        assert "profile:" in ready, ready
        profile = out / "water-station.yaml"

        done = smartcity("agent", "check", "--profile", str(profile))
        assert done.returncode == 0, done.stdout + done.stderr
        thumbprint = hashlib.sha1((out / "certs" / CERT_FILE).read_bytes()).hexdigest().upper()
        assert f"server certificate: thumbprint {thumbprint}" in done.stdout
        assert f"trusted by: trust list {out / 'trusted-servers'}" in done.stdout
        assert "trust on first use: on" not in done.stdout

        document = yaml.safe_load(profile.read_text(encoding="utf-8"))
        document["security"].update(trusted_servers="first-use", trust_on_first_use=True)
        tofu = out / "first-use.yaml"
        tofu.write_text(yaml.safe_dump(document), encoding="utf-8")
        first = smartcity("agent", "check", "--profile", str(tofu))
        assert first.returncode == 0, first.stdout + first.stderr
        stored = first_use_file(out / "first-use", document["endpoint"])
        assert f"trusted by: trust on first use: stored as {stored}" in first.stdout
        assert "trust on first use: on" in first.stdout
        second = smartcity("agent", "check", "--profile", str(tofu))
        assert second.returncode == 0, second.stdout + second.stderr
        assert f"trusted by: trust list {out / 'first-use'}" in second.stdout
        assert "trust on first use: on" in second.stdout
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
