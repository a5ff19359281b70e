"""Settings that are unsafe outside development, refused when the settings load.

``environment: production`` (``VIGIL_ENVIRONMENT=production``) promises real deployments:

* every URL Vigil puts in a message or calls -- ``web.base_url`` (the confirmation links),
  Twilio's public URL, the freeze/staff/named hooks, the webhook channel, the helpdesk -- must be
  ``https://``: a plain-HTTP confirmation link or hook leaks tokens and signed payloads;
* the console channel never stands in for an unconfigured channel (a message that would have
  gone to a phone is printed to a log instead), and TLS verification stays on.

In every environment, SMTP credentials travel only over TLS (``starttls`` or ``use_ssl``), except
to a relay on this machine.  The console channel itself is a demo and development channel: with
any real channel configured it is off unless the settings name it (:func:`effective_console`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from notifiers.console import ConsoleConfig
    from vigil.settings import Settings

REAL_CHANNELS = ("sms", "email", "push", "webhook")


def _urls(s: Settings) -> Iterator[tuple[str, str | None]]:
    yield "web.base_url", s.web.base_url
    yield "web.twilio.public_url", s.web.twilio.public_url
    yield "hooks.freeze.url", s.hooks.freeze.url if s.hooks.freeze.enabled else None
    yield "hooks.staff.url", s.hooks.staff.url if s.hooks.staff.enabled else None
    for name, hook in s.hooks.named.items():
        yield f"hooks.named.{name}.url", hook.url if hook.enabled else None
    yield "channels.webhook.url", s.channels.webhook.url if s.channels.webhook.enabled else None
    desk: Any = s.tickets.helpdesk
    if desk is not None:
        key = "base_url" if hasattr(desk, "base_url") else "url"
        yield f"tickets.helpdesk.{key}", getattr(desk, key, None)


def loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def problems(s: Settings) -> list[str]:
    """Every unsafe setting, each as ``key: what to do``."""
    out: list[str] = []
    if s.environment == "production":
        for key, url in _urls(s):
            if url and url.lower().startswith("http://"):
                out.append(f"{key}: http:// is refused outside development settings (environment: production); "
                           "use https://")
        console = s.channels.console
        if "stand_in_for" in console.model_fields_set and console.stand_in_for:
            out.append("channels.console.stand_in_for: the console never stands in for a real channel in "
                       "production settings; configure the channel or remove it from the rules")
        if not s.channels.email.verify_tls:
            out.append("channels.email.verify_tls: TLS verification cannot be turned off in production settings")
    email = s.channels.email
    if email.enabled and (email.username or email.password) and not (email.starttls or email.use_ssl) \
            and not loopback(email.host):
        out.append("channels.email: SMTP credentials are sent only over TLS; set starttls: true (port 587) or "
                   "use_ssl: true (port 465)")
    return out


def effective_console(s: Settings) -> ConsoleConfig:
    """The console as it runs: off when a real channel is configured (unless the settings name it),
    and never a stand-in in production."""
    c = s.channels.console
    real = any(getattr(s.channels, n).enabled for n in REAL_CHANNELS)
    enabled = c.enabled if ("enabled" in c.model_fields_set or not real) else False
    stand_in = [] if s.environment == "production" else list(c.stand_in_for)
    return c.model_copy(update={"enabled": enabled, "stand_in_for": stand_in})
