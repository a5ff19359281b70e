"""Delivery's settings sections, and what the delivery code reads of the whole settings.

The sections (``channels``, ``delivery``, ``hooks``) live here, beside the code that reads them;
the application's ``Settings`` (``vigil.settings``) composes them.  The delivery code is typed
against :class:`DeliveryConfig`, a protocol, so this package never imports the application shell.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

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


class DeliverySettings(Strict):
    max_attempts: int = Field(5, ge=1)
    backoff_seconds: float = Field(30.0, gt=0)
    backoff_max_seconds: float = Field(3600.0, gt=0)
    lease_seconds: int = Field(120, ge=1)


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
