"""The console channel: prints a readable block for each message.

It is the embedded default (``vigil demo`` needs no provider account), and it can *stand in*
for sms, push and email when those are not configured: the block then shows exactly what the
real channel would carry (the SMS text and its segment count, the push title, body and data,
the email subject and text).  Phone numbers and email addresses are masked unless
``mask_addresses`` is off, because consoles end up in log files.
"""

from __future__ import annotations

import sys
import threading
from typing import IO, ClassVar, Literal

from pydantic import Field

from notifiers import sms_segments
from notifiers.base import Channel, ChannelConfig, DeliveryResult, Message, Recipient

StandIn = Literal["sms", "push", "email", "webhook"]
_DEFAULT_STAND_IN: tuple[StandIn, ...] = ("push", "sms", "email")


class ConsoleConfig(ChannelConfig):
    enabled: bool = True
    stand_in_for: list[StandIn] = Field(
        default_factory=lambda: list(_DEFAULT_STAND_IN),
        description="channels the console prints in place of when they are not enabled",
    )
    stream: Literal["stdout", "stderr"] = "stdout"
    mask_addresses: bool = True
    show_html: bool = False


class ConsoleChannel(Channel):
    name: ClassVar[str] = "console"
    config_model: ClassVar[type[ChannelConfig]] = ConsoleConfig

    def __init__(self, config: ConsoleConfig, *, stream: IO[str] | None = None) -> None:
        self.config = config
        self._stream = stream
        self._lock = threading.Lock()

    def can_reach(self, r: Recipient) -> bool:
        return True

    def send(self, message: Message) -> DeliveryResult:
        block = self.format(message)
        stream = self._stream or (sys.stderr if self.config.stream == "stderr" else sys.stdout)
        try:
            with self._lock:
                stream.write(block)
                stream.flush()
        except (OSError, ValueError) as e:  # closed or broken stream
            return DeliveryResult("transient", error=f"console stream: {e}")
        return DeliveryResult("delivered", provider_id=f"console:{message.outbox_id}")

    def format(self, message: Message) -> str:
        r = message.recipient
        to = {"sms": r.phone, "email": r.email, "push": r.push_token}.get(message.channel) or r.account_id
        if self.config.mask_addresses and to != r.account_id:
            to = mask(to)
        head = f"── {message.channel}" + (" (console)" if message.channel != self.name else "")
        head += f" → {to} · account {r.account_id} · locale {r.locale}"
        if message.alert_id:
            head += f" · alert {message.alert_id}"
        lines = [head]
        if message.subject:
            lines.append(f"Subject: {message.subject}")
        lines.append(message.text)
        if message.channel == "sms":
            info = sms_segments.analyse(message.text)
            lines.append(f"[{info.encoding}, {info.units} units, {info.segments} segment(s)]")
        if message.data:
            lines.append("data: " + ", ".join(f"{k}={v}" for k, v in sorted(message.data.items())))
        if message.html:
            lines.append(
                message.html if self.config.show_html else f"[+ HTML part, {len(message.html)} chars]"
            )
        return "\n".join(lines) + "\n\n"

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "stand_in_for": list(self.config.stand_in_for)}


def mask(value: str) -> str:
    """``+15558675310`` -> ``+1••••••5310``; ``ana@example.com`` -> ``a••@example.com``; a 163-character
    push token -> its ends around at most 12 dots, so one message header fits on a terminal line."""
    if "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}{'•' * max(len(local) - 1, 2)}@{domain}"
    if len(value) <= 6:
        return "•" * len(value)
    return f"{value[:2]}{'•' * min(len(value) - 6, 12)}{value[-4:]}"
