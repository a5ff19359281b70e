"""The account holder's answer to "was this you?", whichever channel it comes by.

:mod:`alerts.answer_policy` decides what an answer may do; this module applies it inside the
caller's transaction, with the alert row locked:

* **"Not me"** (from any channel of the alert, until its deadline, even after an "it was me")
  freezes the account, sends freeze guidance and opens a P1 ticket -- exactly once, however many
  times and by whichever channels it arrives (the lifecycle refuses a second denial).  Every other
  link of the alert stops working.
* **"It was me"** from a confirming channel whose contact is settled closes the question and never
  releases a hold; the alert's other links keep working *for "not me"*.  From any other channel it
  is recorded (``answer_confirm_unverified``) and changes nothing: the alert still reminds,
  expires and escalates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from alerts.actions import run_actions
from alerts.answer_policy import PREVIOUS, AlertState, Answer, Verdict, confirm_channels_for, decide
from alerts.contacts import answer_settings, settled
from alerts.lifecycle import apply
from alerts.outbox import enqueue_notifications
from alerts.ports import ticket_desk
from alerts.store.models import AlertEvent, AlertRow, ConfirmToken

DEFAULT_ON_DENIED = [{"type": "freeze", "scope": "account"},
                     {"type": "ticket", "category": "account_security", "priority": "P1"}]


@dataclass(frozen=True)
class AnswerResult:
    applied: bool
    status: str
    message: str
    outcome: str = ""  # confirm, deny, unverified, repeat, late, ignored, missing


def _aware(dt: datetime | None) -> datetime | None:
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


def deny_deadline(session: Session, alert: AlertRow, token_expiry: datetime | None = None) -> datetime | None:
    """Until when "not me" is heard: the alert's expiry plus ``deny_grace_seconds``, or the answering
    token's own expiry if later (a reminder may have moved the alert's expiry since)."""
    grace = timedelta(seconds=float(answer_settings(session)["deny_grace_seconds"]))
    expires = _aware(alert.expires_at)
    candidates = [d for d in (expires + grace if expires else None, _aware(token_expiry)) if d is not None]
    return max(candidates) if candidates else None


def state_of(session: Session, alert: AlertRow, token_expiry: datetime | None = None) -> AlertState:
    notify = (alert.plan or {}).get("notify") or {}
    chans = notify.get("channels") or alert.channels or []
    configured = notify.get("confirm_channels")
    return AlertState(status=alert.status,
                      confirm_channels=confirm_channels_for(alert.severity, chans, configured),
                      confirm_until=_aware(alert.expires_at),
                      deny_until=deny_deadline(session, alert, token_expiry))


def via_of(channel: str) -> str:
    """The delivery channel behind an answer label: ``link:email`` -> ``email``, ``push:push`` ->
    ``push``, ``link:email:previous`` -> ``email:previous``, ``sms`` -> ``sms``."""
    head, _, rest = channel.partition(":")
    return rest if head in ("link", "push") and rest else channel


def answer(session: Session, alert_id: str, action: str, *, channel: str, now: datetime,
           actor: str = "user", token_expiry: datetime | None = None) -> AnswerResult:
    """Apply ``confirm`` or ``deny`` to an alert (inside the caller's transaction).

    ``channel`` labels the answer (``link:<channel the link was sent by>``, ``push:push``, ``sms``,
    with ``:previous`` for a copy sent to a contact changed lately); ``token_expiry`` is the
    answering token's own deadline, when the answer came with one.
    """
    if action not in ("confirm", "deny"):
        raise ValueError(f"unknown answer {action!r}")
    alert = session.get(AlertRow, alert_id, with_for_update=True)
    if alert is None:
        return AnswerResult(False, "missing", "no such alert", "missing")
    via = via_of(channel)
    is_settled = via.endswith(PREVIOUS) or settled(session, alert.account_id, via, _aware(alert.ts) or now)
    verdict = decide(state_of(session, alert, token_expiry),
                     Answer(action, via, is_settled, now))  # type: ignore[arg-type]
    if verdict.event is None:
        _record(session, alert, verdict, action, channel, actor, now)
        return AnswerResult(False, alert.status, verdict.reason, verdict.outcome)
    alert.status = apply(alert.status, verdict.event)
    alert.answer = action
    alert.answered_at = now
    alert.updated_at = now
    alert.version += 1
    session.add(AlertEvent(alert_id=alert.id, at=now, event=f"answer_{action}", actor=actor,
                           detail={"channel": channel}))
    plan = alert.plan or {}
    if action == "deny":
        # every other link of this alert stops working: the answer that matters was given
        session.execute(update(ConfirmToken).where(ConfirmToken.alert_id == alert.id,
                                                   (ConfirmToken.used_at.is_(None))
                                                   | (ConfirmToken.used_action == "confirm"))
                        .values(used_at=now, used_action="superseded")
                        .execution_options(synchronize_session=False))
        actions = plan.get("on_denied") or DEFAULT_ON_DENIED
        run_actions(session, alert, actions, trigger="denied", now=now, actor=actor)
        if not any(a.get("type") == "ticket" for a in actions):
            alert.ticket_id = ticket_desk(session).open_or_attach(
                session, account_id=alert.account_id, category="account_security", priority="P1", now=now,
                subject=f"Account security: user denied {alert.rule_id}", kind="alert_denied", ref_id=alert.id,
                detail={"rule_id": alert.rule_id})
        channels = list((plan.get("notify") or {}).get("channels") or alert.channels or ["email"])
        enqueue_notifications(session, alert, now=now, purpose="guidance", template="freeze_guidance",
                              channels=channels)
    else:
        run_actions(session, alert, plan.get("on_confirmed") or [], trigger="confirmed", now=now, actor=actor)
    _ticket_event(session, alert, f"user_{action}", channel, actor, now)
    return AnswerResult(True, alert.status, "ok", verdict.outcome)


def _record(session: Session, alert: AlertRow, verdict: Verdict, action: str, channel: str, actor: str,
            now: datetime) -> None:
    """An answer that changes nothing is still evidence: the audit trail (and the ticket) keep it."""
    event = {"unverified": "answer_confirm_unverified", "repeat": "answer_repeated"}.get(verdict.outcome,
                                                                                        "answer_ignored")
    session.add(AlertEvent(alert_id=alert.id, at=now, event=event, actor=actor,
                           detail={"action": action, "channel": channel, "status": alert.status,
                                   "reason": verdict.reason}))
    if verdict.outcome == "unverified":
        _ticket_event(session, alert, "user_confirm_unverified", channel, actor, now)


def _ticket_event(session: Session, alert: AlertRow, kind: str, channel: str, actor: str, now: datetime) -> None:
    if not alert.ticket_id:
        return
    ticket_desk(session).add_event(session, alert.ticket_id, kind, now=now, ref_id=alert.id,
                                   detail={"channel": channel}, actor=actor)
