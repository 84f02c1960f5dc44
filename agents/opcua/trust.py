"""Whom the agent talks to: the OPC-UA server's certificate checked against a trust list.

Basic256Sha256 encrypts the channel to the certificate the server presents. Unless that
certificate is checked, a machine in the middle presents its own, and receives the user name
and password encrypted for itself. So before the session is activated (before any credential
leaves the agent) the server's certificate must be one of:

- the pinned ``security.server_cert`` of the profile, byte for byte; or
- trusted by the ``security.trusted_servers`` folder: the certificate itself, or a CA
  certificate that issued it, checked by asyncua's own ``CertificateValidator`` and
  ``TrustStore`` (validity period and application URI included); or
- with ``security.trust_on_first_use``, the certificate this endpoint presented the first
  time, which was then stored in that folder. A different certificate later is refused like
  any untrusted one: the engineer decides whether the server was replaced.

A refusal names what an engineer needs to decide: the certificate's SHA-1 thumbprint (the
figure OPC-UA servers and tools show), its subject, and the folder to put it in.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from smartcity.agents.opcua.certificates import (
    CertificateError,
    certificate_der,
    load_certificate,
    write_file,
)
from smartcity.agents.opcua.status import status_name

# The trust store logs every certificate it does not trust with a traceback; the refusal is
# reported once, in words, by the driver.
logging.getLogger("asyncuagds.validate").setLevel(logging.CRITICAL)

# Validity period and application URI; key usage flags are left to the engineer who put the
# certificate on the trust list, since many field servers' certificates lack some of them.
_CHECKS = CertificateValidatorOptions.TIME_RANGE | CertificateValidatorOptions.URI
_TRUSTED = _CHECKS | CertificateValidatorOptions.TRUSTED

_PROBLEMS = {
    ua.StatusCodes.BadCertificateTimeInvalid: "has expired or is not valid yet",
    ua.StatusCodes.BadCertificateUriInvalid: "was not issued for the application URI the "
    "server announces",
    ua.StatusCodes.BadCertificateInvalid: "lacks the SubjectAltName OPC-UA requires",
    ua.StatusCodes.BadCertificateRevoked: "has been revoked",
}


@dataclass(frozen=True)
class ServerIdentity:
    """The certificate a server was accepted with, and why it was."""

    thumbprint: str
    subject: str
    trusted_by: str
    """``pinned server_cert <file>``, ``trust list <folder>`` or
    ``trust on first use: stored as <file>``."""
    first_use: bool = False


def thumbprint(certificate: x509.Certificate) -> str:
    """SHA-1 over the DER encoding, in hex: what OPC-UA trust lists and tools display."""
    # SHA-1 names the certificate here, as OPC-UA tools do; it protects nothing
    return certificate.fingerprint(hashes.SHA1()).hex().upper()


def describe(certificate: x509.Certificate) -> str:
    return f"thumbprint {thumbprint(certificate)}, subject {certificate.subject.rfc4514_string()}"


def first_use_file(folder: Path, endpoint: str) -> Path:
    """Where the certificate first seen at ``endpoint`` is kept: one file per endpoint, so a
    later change of certificate at that endpoint is recognised as a change."""
    parts = urlsplit(endpoint)
    name = f"{parts.hostname}_{parts.port or 4840}{parts.path}"
    return folder / f"{re.sub(r'[^A-Za-z0-9.-]+', '_', name).strip('_')}.der"


class ServerTrust:
    """asyncua's certificate validator for the server side of one session.

    Set as ``Client.certificate_validator``: asyncua calls it in CreateSession, after the
    server has proved with its signature that it holds the certificate's key and before
    ActivateSession sends the user's credentials. ``accepted`` tells who was accepted and
    why; ``refusal`` holds the reason when it raised.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        folder: Path,
        pinned: Path | None = None,
        first_use: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self.folder = folder
        self.pinned = pinned
        self.first_use = first_use
        self.accepted: ServerIdentity | None = None
        self.refusal: str | None = None

    async def __call__(self, cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
        try:
            self.accepted = await self._judge(cert, app)
        except ServiceError as exc:
            self.refusal = self.refusal or self._explain(cert, exc.code)
            raise
        self.refusal = None

    async def _judge(
        self, cert: x509.Certificate, app: ua.ApplicationDescription
    ) -> ServerIdentity:
        identity = {"thumbprint": thumbprint(cert), "subject": cert.subject.rfc4514_string()}
        if self.pinned is not None:
            await CertificateValidator(_CHECKS).validate(cert, app)
            try:
                pinned = certificate_der(self.pinned)
            except CertificateError as exc:
                self.refusal = str(exc)
                raise ServiceError(ua.StatusCodes.BadCertificateUntrusted) from None
            if pinned != certificate_der(cert):
                self.refusal = (
                    f"{self.endpoint} presents a certificate ({describe(cert)}) other than the "
                    f"pinned server_cert {self.pinned}"
                )
                raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)
            return ServerIdentity(**identity, trusted_by=f"pinned server_cert {self.pinned}")
        store = await self._store()
        try:
            if store is None:
                # asyncua's validator skips the trust check without a store: refuse here
                await CertificateValidator(_CHECKS).validate(cert, app)
                raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)
            await CertificateValidator(_TRUSTED, store).validate(cert, app)
        except ServiceError as exc:
            if exc.code != ua.StatusCodes.BadCertificateUntrusted or not self.first_use:
                raise
            return self._first_use(cert, identity)
        return ServerIdentity(**identity, trusted_by=f"trust list {self.folder}")

    async def _store(self) -> TrustStore | None:
        """The folder's certificates, read afresh at every connect (a certificate put there
        needs no restart); None when it holds none."""
        store = TrustStore([self.folder], [])
        try:
            if not self.folder.is_dir() or not any(
                path.suffix.lower() in (".der", ".pem") for path in self.folder.iterdir()
            ):
                return None
            await store.load_trust()
        except (OSError, ValueError) as exc:
            self.refusal = f"cannot read the trusted server certificates in {self.folder}: {exc}"
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted) from None
        return store

    def _first_use(self, cert: x509.Certificate, identity: dict[str, str]) -> ServerIdentity:
        record = first_use_file(self.folder, self.endpoint)
        if record.exists():
            try:
                seen = describe(load_certificate(record))
            except CertificateError:
                seen = "a certificate that cannot be read now"
            self.refusal = (
                f"{self.endpoint} changed its certificate: it now presents {describe(cert)}, "
                f"but was first trusted with {seen} ({record}). If the server was replaced, "
                f"put its new certificate in {self.folder} (or delete {record.name} to trust "
                "the next one on first use)"
            )
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_file(record, cert.public_bytes(serialization.Encoding.DER), 0o644)
        except OSError as exc:
            self.refusal = (
                f"{self.endpoint} is seen for the first time ({describe(cert)}), but its "
                f"certificate cannot be stored in {self.folder}: {exc.strerror or exc}"
            )
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted) from None
        return ServerIdentity(
            **identity, trusted_by=f"trust on first use: stored as {record}", first_use=True
        )

    def _explain(self, cert: x509.Certificate, code: int) -> str:
        if code == ua.StatusCodes.BadCertificateUntrusted:
            where = "" if self.folder.is_dir() else " (the folder does not exist yet)"
            return (
                f"{self.endpoint} presents a certificate that is not trusted: {describe(cert)}. "
                f"If this is the server, put its certificate in {self.folder}{where}, or set "
                "security.trust_on_first_use to store the one it presents at first connect"
            )
        problem = _PROBLEMS.get(code, "was refused")
        return (
            f"the certificate of {self.endpoint} {problem} ({describe(cert)}; {status_name(code)})"
        )
