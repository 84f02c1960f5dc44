"""Application instance certificates for OPC-UA (OPC 10000-6 §6.2.2).

Basic256Sha256 needs a certificate and key on both ends of the secure channel. Peers check
that the certificate's SubjectAltName URI equals the ApplicationUri announced in the session,
so the certificate *is* the application's identity: the agent and the simulator take their
ApplicationUri from it instead of configuring the same string twice and getting it wrong.

Keys are written with mode 0600 and nothing is overwritten unless asked: regenerating the
agent's certificate on a live site would silently break the trust every server has in it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Role = Literal["client", "server", "both"]

_USAGES = {
    "client": [ExtendedKeyUsageOID.CLIENT_AUTH],
    "server": [ExtendedKeyUsageOID.SERVER_AUTH],
    "both": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
}


class CertificateError(ValueError):
    """A certificate or key that cannot be created or used; the message says why."""


@dataclass(frozen=True)
class CertificatePair:
    cert: Path
    key: Path
    application_uri: str


def default_application_uri(kind: str, host: str | None = None) -> str:
    """``urn:<host>:smartcity:<kind>``: unique per machine, as OPC-UA expects of an
    ApplicationUri, and recognisable in a server's trust list."""
    return f"urn:{host or socket.gethostname()}:smartcity:{kind}"


def generate_certificate(
    cert_path: str | Path,
    key_path: str | Path,
    *,
    application_uri: str,
    common_name: str | None = None,
    hostnames: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    role: Role = "both",
    days: int = 365,
    key_size: int = 2048,
    overwrite: bool = False,
) -> CertificatePair:
    """Create a self-signed application instance certificate and its RSA key.

    The certificate is DER unless ``cert_path`` ends in ``.pem``; the key is PKCS#8 PEM
    unless ``key_path`` ends in ``.der``. ``hostnames`` default to this machine's name and
    ``localhost``. Raises :class:`CertificateError` (and writes nothing) on bad input or
    when a file exists and ``overwrite`` is false.
    """
    cert_path, key_path = Path(cert_path), Path(key_path)
    if ":" not in application_uri or any(c.isspace() for c in application_uri):
        raise CertificateError(
            f"application URI {application_uri!r} is not a URI (example: urn:host:smartcity:agent)"
        )
    if role not in _USAGES:
        raise CertificateError(f"role {role!r} is not one of client, server, both")
    if not 1 <= days <= 36500:
        raise CertificateError(f"days must be between 1 and 36500, not {days}")
    if key_size not in (2048, 3072, 4096):
        raise CertificateError(
            f"Basic256Sha256 needs an RSA key of 2048 to 4096 bits, not {key_size}"
        )
    if cert_path == key_path:
        raise CertificateError("the certificate and the key must be two different files")
    addresses = []
    for text in ip_addresses:
        try:
            addresses.append(ipaddress.ip_address(text))
        except ValueError:
            raise CertificateError(f"{text!r} is not an IP address") from None
    if not overwrite:
        existing = [str(path) for path in (cert_path, key_path) if path.exists()]
        if existing:
            raise CertificateError(
                f"{', '.join(existing)} already exist(s); pass overwrite to replace "
                "(every server that trusts the old certificate must then trust the new one)"
            )
    for path in (cert_path, key_path):
        if not path.parent.is_dir():
            raise CertificateError(f"folder {path.parent} does not exist")

    names = list(dict.fromkeys(hostnames or (socket.gethostname(), "localhost")))
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name or application_uri.split(":")[-1]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "smartcity"),
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, names[0]),
        ]
    )
    alt_names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    alt_names += [x509.DNSName(name) for name in names]
    alt_names += [x509.IPAddress(address) for address in addresses]
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate small clock skew
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=True,  # self-signed: the certificate signs itself
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(_USAGES[role]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_encoding = (
        serialization.Encoding.PEM
        if cert_path.suffix.lower() == ".pem"
        else serialization.Encoding.DER
    )
    key_encoding = (
        serialization.Encoding.DER
        if key_path.suffix.lower() == ".der"
        else serialization.Encoding.PEM
    )
    key_bytes = key.private_bytes(
        key_encoding, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_file(key_path, key_bytes, 0o600)
    write_file(cert_path, certificate.public_bytes(cert_encoding), 0o644)
    return CertificatePair(cert=cert_path, key=key_path, application_uri=application_uri)


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Write through a temporary file so a crash never leaves half a key behind."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(descriptor, data)
    finally:
        os.close(descriptor)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def load_certificate(path: str | Path) -> x509.Certificate:
    """A certificate file, DER or PEM whatever its name says."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read certificate {path}: {exc.strerror}") from None
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError(f"{path} is not an X.509 certificate: {exc}") from None


def application_uri_of(certificate: x509.Certificate | str | Path) -> str:
    """The ApplicationUri a certificate was issued for (its first SubjectAltName URI)."""
    cert = (
        certificate if isinstance(certificate, x509.Certificate) else load_certificate(certificate)
    )
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = None
    uris = names.get_values_for_type(x509.UniformResourceIdentifier) if names else []
    if not uris:
        where = certificate if not isinstance(certificate, x509.Certificate) else "the certificate"
        raise CertificateError(
            f"{where} has no application URI in its SubjectAltName; OPC-UA peers refuse it "
            "(create one with generate_certificate)"
        )
    return uris[0]


def certificate_der(certificate: x509.Certificate | str | Path) -> bytes:
    cert = (
        certificate if isinstance(certificate, x509.Certificate) else load_certificate(certificate)
    )
    return cert.public_bytes(serialization.Encoding.DER)
