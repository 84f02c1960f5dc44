"""Receivers: reaching people where they are, with every delivery attempt on record.

The alerts service hands each notification (a group of alerts for one receiver) to the
:class:`Dispatcher`, which keeps it in a SQLite outbox and delivers it in the background,
retrying with capped exponential back-off, to a webhook (Alertmanager's webhook payload,
version 4) or by e-mail over SMTP. Receivers are configured by name
(:class:`ReceiversConfig`)::

    config = ReceiversConfig.model_validate(section)  # e.g. from the service's YAML
    async with Dispatcher(config, data_dir / "alerts-outbox.db") as dispatcher:
        notification_id = await dispatcher.submit(notification)  # kept; delivered later
        await dispatcher.status(notification_id)  # pending, delivered or failed
        await dispatcher.attempts(notification_id)  # every attempt, with its outcome

The outbox is a SQLite file of the dispatcher's own; on start the dispatcher resumes every
notification still pending in it.
"""

from smartcity.services.alerts.receivers.config import (
    BasicAuth,
    EmailReceiver,
    ReceiversConfig,
    RetryPolicy,
    WebhookReceiver,
)
from smartcity.services.alerts.receivers.dispatcher import Dispatcher
from smartcity.services.alerts.receivers.model import (
    DeliveryAttempt,
    DeliveryState,
    DeliveryStatus,
    Notification,
    NotifiedAlert,
    Outcome,
    SendResult,
)

__all__ = [
    "BasicAuth",
    "DeliveryAttempt",
    "DeliveryState",
    "DeliveryStatus",
    "Dispatcher",
    "EmailReceiver",
    "Notification",
    "NotifiedAlert",
    "Outcome",
    "ReceiversConfig",
    "RetryPolicy",
    "SendResult",
    "WebhookReceiver",
]
