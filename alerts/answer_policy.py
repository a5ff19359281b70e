"""Who may answer an alert, and what each answer does: a small pure policy over the lifecycle table.

An attacker who holds *one* channel -- a changed email address, a swapped SIM, a phone number
they put on the account -- must not be able to silence a takeover alert.  So:

* **"Not me" always wins until it expires.**  A deny by any channel of the alert (including the
  copy sent to a contact that was changed lately) is applied until its deadline -- the holder's
  token's expiry, or the alert's expiry plus ``deny_grace_seconds`` for an SMS reply -- even after
  an "it was me", even after the alert expired or escalated.  The lifecycle moves it to
  ``denied`` once; a second deny is a repeat (the account is frozen and the P1 ticket opened
  exactly once, by the caller, on the one applied deny).
* **"It was me" counts only from a confirming channel.**  ``notify.confirm_channels`` names them;
  by default (:func:`confirm_channels_for`) a high or critical alert is confirmed only by push to
  the account's device and by SMS to its number, and a low or medium one by any of its
  channels.  The channel's contact must also be *settled*: unchanged since ``previous_contact_days``
  before the alert (the number registered before the alert, the device bound before it).  Any
  other confirm is **recorded** and closes nothing: the alert stays open, reminds, expires and
  escalates as if unanswered.
* **A confirm never outlives the alert.**  Only an alert still waiting (``new``/``notified``) and
  not past its expiry can be confirmed; after expiry or escalation only "not me" is heard.

:func:`decide` is the whole policy; ``alerts.answers.answer`` applies its verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from alerts.lifecycle import CONFIRMED, DENIED, NEW, NOTIFIED, can

# default confirming channels for high and critical alerts: what an attacker holding only the
# mailbox cannot answer from (push to a bound device, SMS to the registered number)
STRONG_CHANNELS = ("push", "sms")
PREVIOUS = ":previous"  # suffix of a channel label: the copy sent to a contact changed lately

Outcome = Literal["confirm", "deny", "unverified", "repeat", "late", "ignored"]


@dataclass(frozen=True)
class Answer:
    """One answer as it arrived.  ``via`` is the channel its secret was sent by (``push``, ``sms``,
    ``email``, or e.g. ``email:previous``); ``settled``: that contact was not changed lately."""

    action: Literal["confirm", "deny"]
    via: str
    settled: bool
    at: datetime


@dataclass(frozen=True)
class AlertState:
    status: str
    confirm_channels: tuple[str, ...]
    confirm_until: datetime | None  # the alert's expiry (None: no deadline)
    deny_until: datetime | None  # the answer's own deadline for "not me" (None: none)


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str = ""

    @property
    def event(self) -> str | None:
        """The lifecycle event to apply, if any."""
        return self.outcome if self.outcome in ("confirm", "deny") else None


def confirm_channels_for(severity: str, channels: Iterable[str], configured: Sequence[str] | None) -> tuple[str, ...]:
    """The rule's ``confirm_channels``, or the default: push and SMS for high/critical, else all."""
    chans = tuple(channels)
    if configured is not None:
        return tuple(c for c in configured if c in chans)
    if severity in ("high", "critical"):
        return tuple(c for c in chans if c in STRONG_CHANNELS)
    return chans


def base_channel(via: str) -> str:
    return via.split(":", 1)[0]


def decide(alert: AlertState, ans: Answer) -> Verdict:
    """What one answer does to an alert in ``alert.status``."""
    if ans.action == "deny":
        if alert.status == DENIED:
            return Verdict("repeat", "already denied")
        if not can(alert.status, "deny"):
            return Verdict("ignored", f"alert is {alert.status}")
        if alert.deny_until is not None and ans.at > alert.deny_until:
            return Verdict("late", "the time to answer is over")
        return Verdict("deny")
    if alert.status == DENIED:
        return Verdict("ignored", "already denied: 'not me' wins")
    if alert.status == CONFIRMED:
        return Verdict("repeat", "already confirmed")
    if alert.status not in (NEW, NOTIFIED):
        return Verdict("late", f"alert is {alert.status}: only 'not me' is still heard")
    if alert.confirm_until is not None and ans.at > alert.confirm_until:
        return Verdict("late", "the alert expired: only 'not me' is still heard")
    if ans.via.endswith(PREVIOUS):
        return Verdict("unverified", "sent to a contact that was changed lately")
    if base_channel(ans.via) not in alert.confirm_channels:
        allowed = ", ".join(alert.confirm_channels) or "none"
        return Verdict("unverified", f"{base_channel(ans.via)} cannot confirm this alert (confirming: {allowed})")
    if not ans.settled:
        return Verdict("unverified", f"the account's {base_channel(ans.via)} contact was changed lately")
    return Verdict("confirm")
