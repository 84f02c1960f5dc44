"""The e-mail receiver: a plain-text message listing the alerts, sent over SMTP.

The subject carries the status in Vietnamese and English and the group's label values, as
Alertmanager's default subject does; the body lists every alert with its labels,
annotations and times. Label text is shown, not obeyed: control characters and other
invisible characters are written as ``\\uXXXX`` escapes (a label can neither add a header
nor hide a line), and a very long value is cut with a note of how much was left out.

Sending uses the standard library's ``smtplib`` in a worker thread. Outcomes follow the
SMTP reply codes: 2xx delivered, 4xx worth retrying, 5xx refused for good; a connection that
fails or times out is retried.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from smartcity.services.alerts.receivers.config import EmailReceiver
from smartcity.services.alerts.receivers.model import (
    Notification,
    NotifiedAlert,
    Outcome,
    SendResult,
)
from smartcity.services.alerts.receivers.webhook import rfc3339

MAX_VALUE_CHARS = 2000
"""A label or annotation value longer than this is cut in the e-mail (never in the
webhook payload, which carries everything)."""
MAX_SUBJECT_CHARS = 150
"""Short enough that the encoded subject fits one header line (998 octets) even in
four-byte characters: folded into several encoded words, white space between them would
be lost."""
ONE_LINE_HEADERS = policy.SMTP.clone(max_line_length=998)
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
STATUS_WORDS = {
    "firing": ("Cảnh báo", "Alert firing"),
    "resolved": ("Đã hết cảnh báo", "Alert resolved"),
}


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``text`` safe to show on one line: invisible and control characters escaped, cut
    after ``limit`` characters with a note of the rest."""
    shown = text[:limit]
    out = "".join(
        _escape(char) if unicodedata.category(char) in _INVISIBLE else char for char in shown
    )
    if len(text) > limit:
        out += f" … [{len(text) - limit} more characters]"
    return out


def subject(notification: Notification) -> str:
    """One line of at most :data:`MAX_SUBJECT_CHARS`: the status in Vietnamese and English,
    then the group's label values. Runs of white space become one space; ``=?`` is split,
    so that label text cannot pass for an encoded word that a mail client would decode."""
    vi, en = STATUS_WORDS[notification.status]
    firing = sum(alert.status == "firing" for alert in notification.alerts)
    tag = f"[FIRING:{firing}]" if notification.status == "firing" else "[RESOLVED]"
    values = " ".join(value for _, value in sorted(notification.group_labels.items()))
    line = " ".join(printable(f"{tag} {vi} / {en}: {values}", MAX_SUBJECT_CHARS).split())
    # Text that looks like an RFC 2047 encoded word would be decoded by the reader's client.
    line = line.replace("=?", "= ?")
    if len(line) > MAX_SUBJECT_CHARS:
        line = line[: MAX_SUBJECT_CHARS - 1].rstrip() + "…"
    return line.removesuffix(":")


def _pairs(title: str, pairs: Mapping[str, str]) -> list[str]:
    items = sorted(pairs.items())
    if not items:
        return []
    return [f"  {title}:"] + [f"    {printable(key)} = {printable(value)}" for key, value in items]


def _alert_lines(alert: NotifiedAlert) -> list[str]:
    lines = [
        f"[{alert.status.upper()}] {printable(alert.fingerprint)}",
        f"  Bắt đầu / Started: {rfc3339(alert.starts_at)}",
    ]
    if alert.ends_at is not None:
        lines.append(f"  Kết thúc / Ended: {rfc3339(alert.ends_at)}")
    lines += _pairs("Nhãn / Labels", alert.labels)
    lines += _pairs("Chú thích / Annotations", alert.annotations)
    if alert.generator_url:
        lines.append(f"  Nguồn / Source: {printable(alert.generator_url)}")
    return lines


def body(notification: Notification, external_url: str = "") -> str:
    firing = sum(alert.status == "firing" for alert in notification.alerts)
    resolved = len(notification.alerts) - firing
    lines = [
        f"Đang cảnh báo / Firing: {firing}; đã hết / resolved: {resolved}",
        f"Người nhận / Receiver: {printable(notification.receiver)}",
        f"Nhóm / Group: {printable(notification.group_key)}",
    ]
    if notification.truncated:
        lines.append(f"Không liệt kê / Not listed: {notification.truncated} more alerts")
    if external_url:
        lines.append(f"Xem / View: {printable(external_url)}")
    lines += _pairs("Nhãn chung / Common labels", notification.common_labels)
    lines += _pairs("Chú thích chung / Common annotations", notification.common_annotations)
    for alert in notification.alerts:
        lines += ["", *_alert_lines(alert)]
    return "\n".join(lines) + "\n"


def message(
    receiver: EmailReceiver,
    notification: Notification,
    *,
    external_url: str = "",
    now: datetime | None = None,
) -> EmailMessage:
    mail = EmailMessage(policy=ONE_LINE_HEADERS)
    mail["From"] = receiver.sender
    mail["To"] = ", ".join(receiver.to)
    mail["Subject"] = subject(notification)
    mail["Date"] = format_datetime(now or datetime.now(UTC))
    # The domain is given: without it make_msgid asks DNS for this host's name.
    mail["Message-ID"] = make_msgid(domain=receiver.sender.rpartition("@")[2] or "localhost")
    mail.set_content(body(notification, external_url))
    return mail


def _reply_outcome(code: int) -> Outcome:
    return Outcome.FAILED if 500 <= code < 600 else Outcome.RETRY


def _send_now(receiver: EmailReceiver, mail: EmailMessage) -> SendResult:
    host, port, timeout = receiver.host, receiver.port, receiver.timeout_seconds
    try:
        context = ssl.create_default_context(cafile=receiver.ca_file)
        smtp = (
            smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
            if receiver.tls == "implicit"
            else smtplib.SMTP(host, port, timeout=timeout)
        )
        with smtp:
            if receiver.tls == "starttls":
                smtp.starttls(context=context)
            if receiver.username is not None and receiver.password is not None:
                smtp.login(receiver.username, receiver.password.get_secret_value())
            refused = smtp.send_message(mail)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        permanent = all(500 <= code < 600 for code in codes)
        detail = "; ".join(
            f"{address}: {code} {text.decode('utf-8', 'replace')}"
            for address, (code, text) in exc.recipients.items()
        )
        outcome = Outcome.FAILED if permanent else Outcome.RETRY
        return SendResult(outcome, codes[0] if codes else None, f"recipients refused: {detail}")
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error
        error = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        return SendResult(
            _reply_outcome(exc.smtp_code), exc.smtp_code, f"{type(exc).__name__}: {error}"
        )
    except smtplib.SMTPNotSupportedError as exc:
        # The server lacks STARTTLS or AUTH: a setup to fix, not a moment to wait out.
        return SendResult(Outcome.FAILED, None, f"not supported by {host}:{port}: {exc}")
    except (smtplib.SMTPException, OSError) as exc:
        return SendResult(Outcome.RETRY, None, f"{type(exc).__name__}: {exc}")
    if refused:
        detail = "; ".join(f"{address}: {code}" for address, (code, _) in refused.items())
        return SendResult(Outcome.DELIVERED, 250, f"some recipients refused: {detail}")
    return SendResult(Outcome.DELIVERED, 250)


async def send(
    receiver: EmailReceiver, notification: Notification, *, external_url: str = ""
) -> SendResult:
    """One SMTP transaction carrying ``notification``; never raises for what the network
    or the server does, only reports it."""
    mail = message(receiver, notification, external_url=external_url)
    return await asyncio.to_thread(_send_now, receiver, mail)
