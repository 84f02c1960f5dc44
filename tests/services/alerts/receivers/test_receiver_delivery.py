"""The dispatcher against real receivers on loopback: what arrives, how often, and what is
recorded of every attempt, across failures, give-ups and restarts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from receivers_support import (
    STALL,
    START,
    SmtpServer,
    WebhookServer,
    alert,
    free_port,
    notification,
)
from support import eventually

from smartcity.runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from smartcity.services.alerts.receivers import (
    DeliveryState,
    Dispatcher,
    Outcome,
    ReceiversConfig,
)

FAST = {"initial_backoff_seconds": 0.02, "max_backoff_seconds": 0.05}


def config(**receivers: dict) -> ReceiversConfig:
    return ReceiversConfig.model_validate(
        {"receivers": receivers, "retry": FAST, "external_url": "https://ioc.example/alerts"}
    )


def hook(server: WebhookServer, **extra: object) -> dict:
    return {"kind": "webhook", "url": server.url, **extra}


async def settled(dispatcher: Dispatcher, notification_id: int) -> DeliveryState:
    """Wait until the notification is delivered or failed, and return which."""

    async def done() -> bool:
        status = await dispatcher.status(notification_id)
        return status.state is not DeliveryState.PENDING

    await eventually(done, within=20, what=f"notification {notification_id} to settle")
    return (await dispatcher.status(notification_id)).state


async def test_webhook_receives_alertmanagers_payload_once(
    tmp_path: Path, webhook_server: WebhookServer
) -> None:
    settings = config(duty=hook(webhook_server, bearer_token="s3cret"))
    resolved = alert("9b1c", "resolved", labels={"alertname": "ph_low", "field": "water_supply"})
    async with Dispatcher(settings, tmp_path / "outbox.db") as dispatcher:
        sent = notification("duty", alert(), resolved, group_key='{}:{field="water_supply"}')
        notification_id = await dispatcher.submit(sent)
        assert await settled(dispatcher, notification_id) is DeliveryState.DELIVERED

    assert len(webhook_server.calls) == 1
    call = webhook_server.calls[0]
    assert call.path == "/hook"
    assert call.headers["Content-Type"] == "application/json"
    assert call.headers["Authorization"] == "Bearer s3cret"
    assert json.loads(call.body) == {
        "version": "4",
        "groupKey": '{}:{field="water_supply"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "duty",
        "groupLabels": {"field": "water_supply"},
        "commonLabels": {"field": "water_supply"},
        "commonAnnotations": {},
        "externalURL": "https://ioc.example/alerts",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "turbidity_high",
                    "field": "water_supply",
                    "site": "cau-do",
                },
                "annotations": {"summary": "Turbidity above 2 NTU"},
                "startsAt": "2026-11-30T11:05:03.12Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "https://ioc.example/alerts/4f2a9c0e1b7d3a55",
                "fingerprint": "4f2a9c0e1b7d3a55",
            },
            {
                "status": "resolved",
                "labels": {"alertname": "ph_low", "field": "water_supply"},
                "annotations": {"summary": "Turbidity above 2 NTU"},
                "startsAt": "2026-11-30T11:05:03.12Z",
                "endsAt": "2026-11-30T11:17:03.12Z",
                "generatorURL": "https://ioc.example/alerts/4f2a9c0e1b7d3a55",
                "fingerprint": "9b1c",
            },
        ],
    }


async def test_basic_auth_and_truncation(tmp_path: Path, webhook_server: WebhookServer) -> None:
    settings = config(
        duty=hook(webhook_server, basic_auth={"username": "ioc", "password": "pw"}, max_alerts=1)
    )
    async with Dispatcher(settings, tmp_path / "outbox.db") as dispatcher:
        sent = notification("duty", alert("a1"), alert("a2"), alert("a3"))
        assert await settled(dispatcher, await dispatcher.submit(sent)) is DeliveryState.DELIVERED
    call = webhook_server.calls[0]
    assert call.headers["Authorization"] == "Basic aW9jOnB3"  # base64 of "ioc:pw"
    payload = json.loads(call.body)
    assert [item["fingerprint"] for item in payload["alerts"]] == ["a1"]
    assert payload["truncatedAlerts"] == 2


async def test_webhook_over_https_trusts_the_configured_ca(
    tmp_path: Path, tls_webhook_server: WebhookServer
) -> None:
    server = tls_webhook_server
    settings = config(
        trusting=hook(server, ca_file=str(server.ca_file)),
        untrusting=hook(server),  # the system's CAs do not know this certificate
    )
    async with Dispatcher(settings, tmp_path / "o.db") as dispatcher:
        trusted = await dispatcher.submit(notification("trusting"))
        untrusted = await dispatcher.submit(notification("untrusting"))
        assert await settled(dispatcher, trusted) is DeliveryState.DELIVERED

        async def tried() -> bool:
            return bool(await dispatcher.attempts(untrusted))

        await eventually(tried, what="an attempt over an untrusted certificate")
        refused = (await dispatcher.attempts(untrusted))[0]
    assert [json.loads(call.body)["receiver"] for call in server.calls] == ["trusting"]
    assert refused.outcome is Outcome.RETRY
    assert "CERTIFICATE_VERIFY_FAILED" in refused.error


async def test_two_failures_then_success_is_three_attempts_one_delivery(
    tmp_path: Path, webhook_server: WebhookServer
) -> None:
    webhook_server.script.extend([503, 500])
    async with Dispatcher(config(duty=hook(webhook_server)), tmp_path / "o.db") as dispatcher:
        notification_id = await dispatcher.submit(notification("duty"))
        assert await settled(dispatcher, notification_id) is DeliveryState.DELIVERED
        attempts = await dispatcher.attempts(notification_id)
        assert dispatcher.pending == 0

    assert [(a.number, a.outcome, a.code) for a in attempts] == [
        (1, Outcome.RETRY, 503),
        (2, Outcome.RETRY, 500),
        (3, Outcome.DELIVERED, 200),
    ]
    assert attempts[0].error == "HTTP 503 Service Unavailable: scripted 503"
    assert all(a.receiver == "duty" and a.duration_seconds >= 0 for a in attempts)
    assert attempts[0].started_at <= attempts[1].started_at <= attempts[2].started_at
    assert webhook_server.answers == [503, 500, 200]
    assert len(webhook_server.delivered) == 1


async def test_a_refusal_fails_at_once(tmp_path: Path, webhook_server: WebhookServer) -> None:
    webhook_server.script.append(404)
    async with Dispatcher(config(duty=hook(webhook_server)), tmp_path / "o.db") as dispatcher:
        notification_id = await dispatcher.submit(notification("duty"))
        assert await settled(dispatcher, notification_id) is DeliveryState.FAILED
        attempts = await dispatcher.attempts(notification_id)
        status = await dispatcher.status(notification_id)
    assert [(a.outcome, a.code) for a in attempts] == [(Outcome.FAILED, 404)]
    assert status.error == "HTTP 404 Not Found: scripted 404"
    assert len(webhook_server.calls) == 1


async def test_gives_up_after_the_configured_time(
    tmp_path: Path, webhook_server: WebhookServer
) -> None:
    webhook_server.script.extend([503] * 1000)
    settings = ReceiversConfig.model_validate(
        {
            "receivers": {"duty": hook(webhook_server)},
            "retry": {**FAST, "give_up_after_seconds": 0.3},
        }
    )
    async with Dispatcher(settings, tmp_path / "o.db") as dispatcher:
        notification_id = await dispatcher.submit(notification("duty"))
        assert await settled(dispatcher, notification_id) is DeliveryState.FAILED
        attempts = await dispatcher.attempts(notification_id)
    assert len(attempts) >= 2
    assert {a.outcome for a in attempts[:-1]} == {Outcome.RETRY}
    last = attempts[-1]
    assert last.outcome is Outcome.FAILED
    assert last.code == 503
    assert last.error.startswith(f"gave up after {len(attempts)} attempts over ")
    assert len(webhook_server.calls) == len(attempts)


async def test_a_receiver_that_never_answers_holds_nobody_up(
    tmp_path: Path, webhook_server: WebhookServer
) -> None:
    webhook_server.script.extend([STALL, STALL])
    settings = config(duty=hook(webhook_server, timeout_seconds=1))
    async with Dispatcher(settings, tmp_path / "o.db") as dispatcher:
        first = await dispatcher.submit(notification("duty", group_key="g1"))
        second = await dispatcher.submit(notification("duty", group_key="g2"))
        # Both kept, neither answered: submitting does not wait for a delivery.
        for item in (first, second):
            status = await dispatcher.status(item)
            assert (status.state, status.attempts) == (DeliveryState.PENDING, 0)
        assert await settled(dispatcher, first) is DeliveryState.DELIVERED
        assert await settled(dispatcher, second) is DeliveryState.DELIVERED
        attempts = await dispatcher.attempts(first) + await dispatcher.attempts(second)
    timed_out = [a for a in attempts if a.outcome is Outcome.RETRY]
    assert len(timed_out) == 2
    assert {a.error for a in timed_out} == {"no answer within 1 s"}
    assert all(a.duration_seconds >= 1 for a in timed_out)
    assert len(webhook_server.calls) == 4


async def test_an_unreachable_receiver_is_retried(tmp_path: Path) -> None:
    settings = config(duty={"kind": "webhook", "url": f"http://127.0.0.1:{free_port()}/"})
    async with Dispatcher(settings, tmp_path / "o.db") as dispatcher:
        notification_id = await dispatcher.submit(notification("duty"))

        async def retried() -> bool:
            return len(await dispatcher.attempts(notification_id)) >= 2

        await eventually(retried, what="two attempts")
        attempts = await dispatcher.attempts(notification_id)
        status = await dispatcher.status(notification_id)
    assert attempts[0].outcome is Outcome.RETRY
    assert attempts[0].code is None
    assert "Connect" in attempts[0].error
    assert status.state is DeliveryState.PENDING


async def test_a_restart_delivers_pending_notifications_once(
    tmp_path: Path, webhook_server: WebhookServer
) -> None:
    outbox = tmp_path / "outbox.db"
    webhook_server.script.extend([503] * 1000)
    settings = config(duty=hook(webhook_server))
    first = Dispatcher(settings, outbox)
    await first.start()
    ids = [await first.submit(notification("duty", group_key=f"g{n}")) for n in range(3)]

    async def each_tried() -> bool:
        counts = [len(await first.attempts(item)) for item in ids]
        return min(counts) >= 1

    await eventually(each_tried, what="a failed attempt for each notification")
    await first.close()
    tried_before = len(webhook_server.calls)

    webhook_server.script.clear()  # the receiver is back
    async with Dispatcher(settings, outbox) as second:
        assert second.pending == 3
        for item in ids:
            assert await settled(second, item) is DeliveryState.DELIVERED
        attempts = {item: await second.attempts(item) for item in ids}
    delivered = webhook_server.delivered
    assert sorted(json.loads(call.body)["groupKey"] for call in delivered) == ["g0", "g1", "g2"]
    for item in ids:
        outcomes = [a.outcome for a in attempts[item]]
        assert outcomes[-1] is Outcome.DELIVERED
        assert set(outcomes[:-1]) == {Outcome.RETRY}
    assert len(webhook_server.calls) == tried_before + 3

    async with Dispatcher(settings, outbox) as third:  # nothing left to send
        assert third.pending == 0
    assert len(webhook_server.delivered) == 3


async def test_an_unreadable_outbox_row_is_failed_not_resumed(
    tmp_path: Path, webhook_server: WebhookServer
) -> None:
    outbox = tmp_path / "outbox.db"
    webhook_server.script.extend([503] * 1000)
    settings = config(duty=hook(webhook_server))
    async with Dispatcher(settings, outbox) as first:
        damaged = await first.submit(notification("duty", group_key="g1"))
        kept = await first.submit(notification("duty", group_key="g2"))
    with sqlite3.connect(outbox) as db:
        db.execute("UPDATE notifications SET body = '{\"receiver\": 7}' WHERE id = ?", (damaged,))
    webhook_server.script.clear()
    async with Dispatcher(settings, outbox) as second:
        assert second.pending == 1
        assert await settled(second, kept) is DeliveryState.DELIVERED
        status = await second.status(damaged)
    assert status.state is DeliveryState.FAILED
    assert status.error == "unreadable: not a notification: 'group_key' is missing"
    assert [json.loads(call.body)["groupKey"] for call in webhook_server.delivered] == ["g2"]


async def test_email_arrives_once(tmp_path: Path, smtp_server: SmtpServer) -> None:
    settings = config(
        engineers={
            "kind": "email",
            "to": ["truc-ca@dawaco.example", "ioc@danang.example"],
            "sender": "alerts@ioc.example",
            "host": smtp_server.host,
            "port": smtp_server.port,
            "tls": "none",
        }
    )
    async with Dispatcher(settings, tmp_path / "o.db") as dispatcher:
        notification_id = await dispatcher.submit(notification("engineers"))
        assert await settled(dispatcher, notification_id) is DeliveryState.DELIVERED
        attempts = await dispatcher.attempts(notification_id)
    assert [(a.outcome, a.code) for a in attempts] == [(Outcome.DELIVERED, 250)]
    assert len(smtp_server.messages) == 1
    envelope, mail = smtp_server.messages[0]
    assert envelope.mail_from == "alerts@ioc.example"
    assert envelope.rcpt_tos == ["truc-ca@dawaco.example", "ioc@danang.example"]
    assert mail["Subject"] == "[FIRING:1] Cảnh báo / Alert firing: water_supply"
    assert mail["To"] == "truc-ca@dawaco.example, ioc@danang.example"
    text = mail.get_content()
    assert "[FIRING] 4f2a9c0e1b7d3a55" in text
    assert "    site = cau-do" in text
    assert "    summary = Turbidity above 2 NTU" in text
    assert f"Bắt đầu / Started: {START:%Y-%m-%dT%H:%M:%S}.12Z" in text
    assert "Xem / View: https://ioc.example/alerts" in text


async def test_email_over_starttls_with_a_login(
    tmp_path: Path, tls_smtp_server: SmtpServer
) -> None:
    server = tls_smtp_server
    receiver = {
        "kind": "email",
        "to": ["a@x.example"],
        "sender": "alerts@ioc.example",
        "host": server.host,
        "port": server.port,
        "tls": "starttls",
        "username": "ioc",
        "password": "s3cret",
        "ca_file": str(server.ca_file),
    }
    settings = config(
        engineers=receiver,
        untrusting={**receiver, "ca_file": None},  # the system's CAs do not know this one
        plain={**receiver, "tls": "none"},  # the server takes no login in the clear
    )
    async with Dispatcher(settings, tmp_path / "o.db") as dispatcher:
        ids = {
            name: await dispatcher.submit(notification(name))
            for name in ("engineers", "untrusting", "plain")
        }
        assert await settled(dispatcher, ids["engineers"]) is DeliveryState.DELIVERED
        assert await settled(dispatcher, ids["plain"]) is DeliveryState.FAILED

        async def tried() -> bool:
            return bool(await dispatcher.attempts(ids["untrusting"]))

        await eventually(tried, what="an attempt over an untrusted certificate")
        untrusted = await dispatcher.attempts(ids["untrusting"])
        plain = await dispatcher.attempts(ids["plain"])
    assert len(server.messages) == 1
    assert server.logins == [True]
    assert untrusted[0].outcome is Outcome.RETRY
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted[0].error
    # Without TLS the server offers no login, and credentials are never sent in the clear.
    assert [(a.outcome, a.code) for a in plain] == [(Outcome.FAILED, None)]
    assert "SMTP AUTH extension not supported" in plain[0].error


async def test_email_retries_a_temporary_refusal(tmp_path: Path, smtp_server: SmtpServer) -> None:
    smtp_server.data_script.append("451 4.3.0 try again later")
    settings = config(
        engineers={
            "kind": "email",
            "to": ["a@x.example"],
            "sender": "alerts@ioc.example",
            "host": smtp_server.host,
            "port": smtp_server.port,
            "tls": "none",
        }
    )
    async with Dispatcher(settings, tmp_path / "o.db") as dispatcher:
        notification_id = await dispatcher.submit(notification("engineers"))
        assert await settled(dispatcher, notification_id) is DeliveryState.DELIVERED
        attempts = await dispatcher.attempts(notification_id)
    assert [(a.outcome, a.code) for a in attempts] == [
        (Outcome.RETRY, 451),
        (Outcome.DELIVERED, 250),
    ]
    assert "try again later" in attempts[0].error
    assert len(smtp_server.messages) == 1


async def test_email_to_a_refused_recipient_fails_at_once(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    smtp_server.refuse.add("nobody@x.example")
    settings = config(
        engineers={
            "kind": "email",
            "to": ["nobody@x.example"],
            "sender": "alerts@ioc.example",
            "host": smtp_server.host,
            "port": smtp_server.port,
            "tls": "none",
        }
    )
    async with Dispatcher(settings, tmp_path / "o.db") as dispatcher:
        notification_id = await dispatcher.submit(notification("engineers"))
        assert await settled(dispatcher, notification_id) is DeliveryState.FAILED
        attempts = await dispatcher.attempts(notification_id)
    assert [(a.outcome, a.code) for a in attempts] == [(Outcome.FAILED, 550)]
    assert attempts[0].error.startswith("recipients refused: nobody@x.example: 550")
    assert smtp_server.messages == []


async def test_refusals_from_the_dispatcher(tmp_path: Path, webhook_server: WebhookServer) -> None:
    dispatcher = Dispatcher(config(duty=hook(webhook_server)), tmp_path / "o.db")
    with pytest.raises(FailedPrecondition, match="not running"):
        await dispatcher.submit(notification("duty"))
    async with dispatcher:
        with pytest.raises(InvalidArgument, match=r"receiver 'pager' is not configured"):
            await dispatcher.submit(notification("pager"))
        with pytest.raises(InvalidArgument, match="must be a Notification"):
            await dispatcher.submit({"receiver": "duty"})  # type: ignore[arg-type]
        with pytest.raises(NotFound, match="no notification 42"):
            await dispatcher.attempts(42)
    assert webhook_server.calls == []
