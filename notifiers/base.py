"""The channel contract.

A channel is small: class attributes say what it can carry, a pydantic config (secrets as
``SecretStr``) is validated at load, and ``send(message)`` returns a :class:`DeliveryResult`
-- it never raises for a delivery failure.  Rendering is separate (``notifiers.render``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

Status = Literal["delivered", "sent", "transient", "permanent", "skipped", "unknown"]

# Values of DeliveryResult.action.
OPT_OUT = "opt_out"
BAD_ADDRESS = "bad_address"
PRUNE_TOKEN = "prune_token"
OPS_ALERT = "ops_alert"
BACKOFF = "backoff"
ACTIONS = frozenset({OPT_OUT, BAD_ADDRESS, PRUNE_TOKEN, OPS_ALERT, BACKOFF})


@dataclass(frozen=True)
class Recipient:
    account_id: str
    locale: str = "en"
    timezone: str = "UTC"
    phone: str | None = None
    email: str | None = None
    push_token: str | None = None
    anti_phishing_code: str | None = None


@dataclass(frozen=True)
class Message:
    """A rendered message for one channel.  ``data`` carries machine fields (push actions)."""

    outbox_id: str
    channel: str
    recipient: Recipient
    subject: str
    text: str
    html: str | None = None
    data: Mapping[str, str] = field(default_factory=dict)
    alert_id: str | None = None
    inline: Mapping[str, tuple[bytes, str]] = field(default_factory=dict)  # Content-ID -> (bytes, type): email


@dataclass(frozen=True)
class DeliveryResult:
    """``sent``: handed to the provider (a receipt may follow); ``delivered``: final.

    ``transient`` is retried with backoff; ``permanent`` goes to the next channel or the dead
    letters.  ``unknown``: the message was handed over but no answer came (a timeout after SMTP
    ``DATA``, a read timeout after an HTTP request was written) -- the provider may have it.  It
    is never resent within the same attempt; the delivery policy decides about a later one.

    ``action`` tells the engine what else to do: ``opt_out`` (the number replied STOP),
    ``bad_address``, ``prune_token``, ``ops_alert`` (configuration broken), ``backoff`` (rate limit).
    ``retry_after`` is the provider's wait in seconds when it gave one; ``max_retries`` caps the
    retries *this* error deserves (Twilio 30003 "unreachable handset": one delayed retry, then the
    next channel); None leaves it to the delivery policy.
    """

    status: Status
    provider_id: str | None = None
    error_code: str | None = None
    error: str | None = None
    action: str | None = None
    retry_after: float | None = None
    max_retries: int | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("delivered", "sent")


class ChannelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False


class Channel:
    """Subclasses set ``name`` and ``config_model`` and take ``(config, **seams)`` in ``__init__``;
    seams are keyword-only test hooks (an HTTP client, a credential), never settings."""

    name: ClassVar[str]
    config_model: ClassVar[type[ChannelConfig]] = ChannelConfig
    max_body_len: ClassVar[int | None] = None
    rate_per_sec: ClassVar[float | None] = None
    needs: ClassVar[str | None] = None  # the recipient field the channel needs: phone, email, push_token

    def can_reach(self, r: Recipient) -> bool:
        return self.needs is None or bool(getattr(r, self.needs))

    def send(self, message: Message) -> DeliveryResult:
        raise NotImplementedError

    #: True when :meth:`transmit` calls ``handover`` itself at the moment the provider may start
    #: to hold the message (SMTP: after ``DATA`` was accepted, before the body's final dot).
    #: False: the request is handed over as the call begins.
    reports_handover: ClassVar[bool] = False
    #: True when the receiver drops a second copy of a message (an idempotency key it honours,
    #: like the webhook's ``X-Vigil-Delivery``): a message whose outcome is unknown may be resent.
    idempotent: ClassVar[bool] = False

    def transmit(self, message: Message, handover: Callable[[], None]) -> DeliveryResult:
        """Send, calling ``handover()`` just before the provider can first hold the message.

        The delivery job records the handover before a byte that could deliver the message goes
        out, so a worker killed mid-call leaves a record saying whether the provider may have it.
        An exception from ``handover`` (the lease is gone) aborts the send before that point.
        """
        handover()
        return self.send(message)

    def close(self) -> None:
        """Release connections (called on shutdown)."""

    def describe(self) -> Mapping[str, Any]:
        return {"name": self.name}
