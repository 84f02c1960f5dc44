"""The simulated water station's OPC-UA server before its address space: who may talk to
it (security policies, its own certificate, the client certificates it trusts, the users it
knows) and what it says of itself (endpoint, names, operation limits).

The station serves Basic256Sha256 (Sign, SignAndEncrypt) and, only when asked, an unsecured
endpoint. Its certificate and key are made in its certificate folder on the first start and
kept; a client certificate is accepted only if it is one of the trusted files, byte for byte.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import structlog
from asyncua import Server, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from cryptography import x509

from smartcity.agents.opcua.certificates import (
    application_uri_of,
    certificate_der,
    default_application_uri,
    generate_certificate,
    load_certificate,
)

__all__ = [
    "CERT_FILE",
    "KEY_FILE",
    "POLICY_TYPES",
    "PRODUCT_URI",
    "Mode",
    "StationUsers",
    "TrustList",
    "new_server",
    "security_problems",
    "station_certificate",
    "trusted_certificates",
]

log = structlog.get_logger(__name__)

PRODUCT_URI = "urn:smartcity:sim:water-station"
CERT_FILE = "water-station.der"
KEY_FILE = "water-station-key.pem"

Mode = Literal["None", "Sign", "SignAndEncrypt"]
POLICY_TYPES = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}


def security_problems(
    modes: Sequence[str],
    certificate_dir: str | Path | None,
    trusted: Sequence[str | Path],
    accept_any_certificate: bool,
) -> list[str]:
    """What is wrong with these security options of a station (nothing: an empty list)."""
    problems = []
    unknown = [mode for mode in modes if mode not in POLICY_TYPES]
    if unknown or not modes:
        problems.append(f"modes must be some of None, Sign, SignAndEncrypt, not {modes!r}")
    secure = any(mode != "None" for mode in modes)
    if secure and certificate_dir is None:
        problems.append("secure modes need certificate_dir for the station's certificate")
    if secure and not trusted and not accept_any_certificate:
        problems.append(
            "secure modes need trusted_certificates (the agent's certificate) or "
            "accept_any_certificate=True"
        )
    return problems


class StationUsers:
    """Username/password check for the simulator; anonymous when no users are configured.
    asyncua asks it on every ActivateSession, so it also counts the sessions opened."""

    def __init__(self, users: Mapping[str, str] | None) -> None:
        self._users = dict(users or {})
        self.logins = 0

    @property
    def named(self) -> bool:
        """Whether sessions log in with a user name, rather than anonymously."""
        return bool(self._users)

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if not self._users:
            self.logins += 1
            return User(role=UserRole.User)
        expected = self._users.get(username or "")
        if expected is None or password is None:
            return None
        if not hmac.compare_digest(expected.encode(), password.encode()):
            return None
        self.logins += 1
        return User(role=UserRole.User, name=username)


class TrustList:
    """Accept a client certificate only if it is one of the trusted ones (byte for byte),
    currently valid and issued for the ApplicationUri the client announces."""

    def __init__(self, trusted: Iterable[bytes]) -> None:
        self._trusted = set(trusted)
        self._basic = CertificateValidator(
            CertificateValidatorOptions.TIME_RANGE | CertificateValidatorOptions.URI
        )

    async def __call__(self, cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
        await self._basic.validate(cert, app)
        if certificate_der(cert) not in self._trusted:
            log.warning("untrusted client certificate refused", application_uri=app.ApplicationUri)
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)


def station_certificate(folder: Path, host: str, name: str) -> tuple[Path, Path]:
    """The station's certificate and key in ``folder``, made for ``host`` when missing."""
    cert, key = folder / CERT_FILE, folder / KEY_FILE
    if not cert.exists() or not key.exists():
        folder.mkdir(parents=True, exist_ok=True)
        names = [host] if not _is_ip(host) else []
        generate_certificate(
            cert,
            key,
            application_uri=default_application_uri("water-station"),
            common_name=f"smartcity water station {name}",
            hostnames=[*names, socket.gethostname(), "localhost"],
            ip_addresses=[host] if _is_ip(host) else [],
            role="server",
            overwrite=True,
        )
    return cert, key


def trusted_certificates(entries: Iterable[Path]) -> list[bytes]:
    """The DER bytes of every certificate file given, or found (``.der``, ``.pem``) in a
    folder given."""
    trusted = []
    for entry in entries:
        files = (
            sorted(p for p in entry.iterdir() if p.suffix.lower() in (".der", ".pem"))
            if entry.is_dir()
            else [entry]
        )
        trusted += [certificate_der(load_certificate(path)) for path in files]
    return trusted


async def new_server(
    url: str,
    name: str,
    host: str,
    *,
    modes: Sequence[Mode],
    users: StationUsers,
    certificate_dir: Path | None,
    trusted: Sequence[Path] | None,
    operation_limits: Mapping[int, int | None],
) -> tuple[Server, str]:
    """A server for station ``name`` on ``url``, secured, with no address space yet, and
    the ApplicationUri it announces. ``trusted`` are the client certificate files or folders
    it accepts (``None``: any certificate); ``operation_limits`` the OperationLimits nodes
    to set (``None``: left as asyncua has them)."""
    server = Server(user_manager=users)
    await server.init()
    server.set_endpoint(url)
    server.set_server_name(f"smartcity water station {name}")
    server.product_uri = PRODUCT_URI
    application_uri = default_application_uri("water-station")
    if any(mode != "None" for mode in modes):
        assert certificate_dir is not None
        cert, key = station_certificate(certificate_dir, host, name)
        application_uri = application_uri_of(cert)
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        if trusted is not None:
            server.set_certificate_validator(TrustList(trusted_certificates(trusted)))
    await server.set_application_uri(application_uri)
    server.set_security_policy([POLICY_TYPES[mode] for mode in modes])
    server.set_identity_tokens(
        [ua.UserNameIdentityToken] if users.named else [ua.AnonymousIdentityToken]
    )
    for node, limit in operation_limits.items():
        if limit is not None:
            await server.write_attribute_value(
                ua.NodeId(node), ua.DataValue(ua.Variant(limit, ua.VariantType.UInt32))
            )
    return server, application_uri


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
