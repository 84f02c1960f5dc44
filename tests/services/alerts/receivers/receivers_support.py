"""Helpers for the receiver tests: the notifications they send, and the recording
servers the fixtures in ``conftest.py`` run."""

from __future__ import annotations

import ipaddress
import socket
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from smartcity.services.alerts.receivers import Notification, NotifiedAlert

START = datetime(2026, 11, 30, 11, 5, 3, 120000, tzinfo=UTC)
STALL = 0
"""A scripted "status" for which the webhook server never answers (until the test ends)."""


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookServer:
    url: str
    calls: list[Call] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    """The status each call was answered with."""
    script: deque[int] = field(default_factory=deque)
    """Statuses to answer with, in order (:data:`STALL`: no answer); 200 once they are
    used up."""
    ca_file: Path | None = None
    """The server's certificate, when it speaks TLS."""

    @property
    def delivered(self) -> list[Call]:
        """Calls answered with a 2xx."""
        return [call for call, status in zip(self.calls, self.answers, strict=True) if status < 300]


@dataclass
class SmtpServer:
    host: str
    port: int
    messages: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    data_script: deque[str] = field(default_factory=deque)
    """Replies to DATA, in order; "250 OK" once they are used up."""
    refuse: set[str] = field(default_factory=set)
    """Recipients answered with 550."""
    ca_file: Path | None = None
    """The server's certificate, when it speaks TLS."""
    logins: list[bool] = field(default_factory=list)
    """Each login attempt, and whether it was accepted."""

    async def handle_RCPT(  # noqa: N802 - the name aiosmtpd calls
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - the name aiosmtpd calls
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        reply = self.data_script.popleft() if self.data_script else "250 OK"
        if reply.startswith("250"):
            content = envelope.original_content or b""
            self.messages.append((envelope, message_from_bytes(content, policy=policy.default)))
        return reply


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files in ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp.crt", folder / "smtp.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def alert(
    fingerprint: str = "4f2a9c0e1b7d3a55",
    status: str = "firing",
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> NotifiedAlert:
    return NotifiedAlert(
        fingerprint=fingerprint,
        status=status,  # type: ignore[arg-type]
        labels=labels
        if labels is not None
        else {"alertname": "turbidity_high", "field": "water_supply", "site": "cau-do"},
        annotations=annotations
        if annotations is not None
        else {"summary": "Turbidity above 2 NTU"},
        starts_at=START,
        ends_at=None if status == "firing" else START + timedelta(minutes=12),
        generator_url="https://ioc.example/alerts/4f2a9c0e1b7d3a55",
    )


def notification(receiver: str, *alerts: NotifiedAlert, group_key: str = "g1") -> Notification:
    alerts = alerts or (alert(),)
    status = "firing" if any(item.status == "firing" for item in alerts) else "resolved"
    return Notification(
        receiver=receiver,
        group_key=group_key,
        group_labels={"field": "water_supply"},
        common_labels={"field": "water_supply"},
        common_annotations={},
        alerts=list(alerts),
        status=status,  # type: ignore[arg-type]
    )
