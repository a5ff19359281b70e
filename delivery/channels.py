"""Wire channels and the renderer from settings (the notifiers package owns the adapters).

Besides the account holder's channels, the outbox carries two system transports:

* ``freeze_hook`` -- "not me" froze the account in Vigil; this tells the exchange's account
  service, as an HMAC-signed JSON POST (the webhook adapter) retried until it answers 2xx.  With
  no hook configured (the embedded default) Vigil's own account status *is* the freeze, and the
  row is recorded as delivered by ``builtin``.
* ``escalate`` -- staff escalations (unanswered alerts, refused rule sets, SLA breaches): the
  configured staff webhook, else the log (and the console when it is on).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from delivery.settings import DeliveryConfig
from notifiers.base import Channel, DeliveryResult, Message

log = logging.getLogger("vigil.staff")


class BuiltinFreeze(Channel):
    """No account service to call: the account status kept by Vigil is the freeze."""

    name: ClassVar[str] = "builtin"

    def send(self, message: Message) -> DeliveryResult:
        return DeliveryResult("delivered", provider_id="builtin")


class StaffLog(Channel):
    """Staff escalations written to the log (WARNING), and printed when the console is on."""

    name: ClassVar[str] = "staff-log"

    def __init__(self, console: Channel | None = None) -> None:
        self.console = console

    def send(self, message: Message) -> DeliveryResult:
        data = dict(message.data)
        log.warning("staff escalation for %s (%s): %s", data.get("target", "security-staff"),
                    data.get("trigger", message.subject), {k: v for k, v in data.items() if k != "target"})
        if self.console is not None:
            self.console.send(message)
        return DeliveryResult("delivered", provider_id="log")


def build_channels(settings: DeliveryConfig) -> dict[str, Channel]:
    from delivery.settings import effective_console
    from notifiers.registry import build_channels as build
    from notifiers.webhook import WebhookChannel

    cfg: dict[str, Any] = settings.channels.model_dump(mode="python")
    console = effective_console(settings)  # a demo channel: off beside real ones unless named
    cfg["console"] = console.model_dump(mode="python")
    built = build(cfg)
    hooks = settings.hooks
    built["freeze_hook"] = WebhookChannel(hooks.freeze) if hooks.freeze.enabled else BuiltinFreeze()
    if hooks.staff.enabled:
        built["escalate"] = WebhookChannel(hooks.staff)
    else:
        built["escalate"] = StaffLog(built.get("console") if console.enabled else None)
    for name, hook in hooks.named.items():
        if hook.enabled:
            built[f"webhook:{name}"] = WebhookChannel(hook)
    return built


def renderer() -> Callable[[str, str, str, Mapping[str, Any]], Any]:
    from notifiers.render import render

    return render
