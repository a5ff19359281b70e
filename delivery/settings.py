"""Delivery's settings sections, and what the delivery code reads of the whole settings.

The sections (``channels``, ``delivery``, ``hooks``) live here, beside the code that reads them;
the application's ``Settings`` (``vigil.settings``) composes them.  The delivery code is typed
against :class:`DeliveryConfig`, a protocol, so this package never imports the application shell.
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from delivery.policy import PolicySettings
from notifiers.console import ConsoleConfig
from notifiers.email import EmailConfig
from notifiers.push import PushConfig
from notifiers.sms import SmsConfig
from notifiers.webhook import WebhookConfig


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Channels(BaseModel):
    """Channel settings; each channel validates its own section (``notifiers.<channel>``)."""

    model_config = ConfigDict(extra="forbid")
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    email: EmailConfig = Field(default_factory=EmailConfig)
    sms: SmsConfig = Field(default_factory=SmsConfig)
    push: PushConfig = Field(default_factory=PushConfig)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)


UnknownOutcome = Literal["retry", "presume_sent"]
PRESUME: UnknownOutcome = "presume_sent"


class DeliverySettings(Strict):
    max_attempts: int = Field(5, ge=1)
    backoff_seconds: float = Field(30.0, gt=0)
    backoff_max_seconds: float = Field(3600.0, gt=0)
    lease_seconds: int = Field(120, ge=1, description="a claim's lease; renewed before each send and while "
                                                      "the provider call runs")
    batch_size: int = Field(100, ge=1, le=10_000, description="rows claimed at a time")
    concurrency: dict[str, int] = Field(
        default_factory=lambda: {"sms": 4, "push": 4, "email": 2},
        description="parallel sends per channel (each channel has its own senders: a hung relay "
                    "never delays another channel)")
    default_concurrency: int = Field(2, ge=1, le=64, description="parallel sends of a channel not listed")
    backlog_per_sender: int = Field(
        10, ge=1, le=1000, description="messages claimed ahead per parallel send; a channel whose backlog is "
                                       "full is left out of the next claim")
    on_unknown: dict[str, UnknownOutcome] = Field(
        default_factory=lambda: {"sms": PRESUME},
        description="after a provider timeout with the message handed over: 'retry' per the backoff policy "
                    "(the same Message-ID / delivery id), or 'presume_sent' (the delivery receipt, or its "
                    "absence, settles it); channels not listed retry")

    @field_validator("concurrency")
    @classmethod
    def _positive(cls, v: dict[str, int]) -> dict[str, int]:
        bad = {k: n for k, n in v.items() if not 1 <= n <= 64}
        if bad:
            raise ValueError(f"concurrency must be between 1 and 64 per channel; got {bad}")
        return v

    def senders(self, channel: str) -> int:
        return self.concurrency.get(channel, self.default_concurrency)


class HookSettings(Strict):
    """Calls to the exchange's own systems (HMAC-signed JSON POSTs, retried until 2xx)."""

    freeze: WebhookConfig = Field(default_factory=WebhookConfig,
                                  description="the account service's freeze endpoint; off: Vigil's status only")
    staff: WebhookConfig = Field(default_factory=WebhookConfig,
                                 description="where staff escalations go; off: the log (and the console)")
    named: dict[str, WebhookConfig] = Field(
        default_factory=dict, description="webhooks a rule's `webhook: {name: …}` action posts to")


class WebLinks(Protocol):
    """The web settings confirmation links are built from."""

    @property
    def base_url(self) -> str: ...



class DeliveryConfig(Protocol):
    """What delivery reads of the application's settings (``vigil.settings.Settings`` is one)."""

    @property
    def channels(self) -> Channels: ...

    @property
    def delivery(self) -> DeliverySettings: ...

    @property
    def hooks(self) -> HookSettings: ...

    @property
    def policy(self) -> PolicySettings: ...

    @property
    def web(self) -> WebLinks: ...

    @property
    def environment(self) -> str: ...

    @property
    def default_locale(self) -> str: ...

    @property
    def default_timezone(self) -> str: ...


REAL_CHANNELS = ("sms", "email", "push", "webhook")


def effective_console(s: DeliveryConfig) -> ConsoleConfig:
    """The console as it runs: a demo and development channel, off when a real channel is configured
    (unless the settings name it), and never a stand-in for a real channel in production."""
    c = s.channels.console
    real = any(getattr(s.channels, n).enabled for n in REAL_CHANNELS)
    enabled = c.enabled if ("enabled" in c.model_fields_set or not real) else False
    stand_in = [] if s.environment == "production" else list(c.stand_in_for)
    return c.model_copy(update={"enabled": enabled, "stand_in_for": stand_in})
