"""Satisfaction surveys: one question (1-5 and an optional comment) when a ticket is resolved.

The survey goes out on the channel the ticket came from (an SMS reply gets an SMS, an in-app
message a push, an alert's ticket the channel that reached the holder), in the holder's language,
through the outbox like every other message.  It is answered once: by a single-use link (a
192-bit token issued when the message is composed, stored as SHA-256 -- ``delivery/holder.py``)
or by an SMS reply carrying the survey's code (``5 4821 thanks``).

Never for an account that opted out (``vigil_accounts.survey_opt_out``, set from the survey page),
and never for a frozen account: the survey is *held* until the account is unfrozen
(:func:`release_held`, run by the escalate job), then asked if it has not expired.

A comment is scored like every holder's words (:mod:`tickets.sentiment`); a strongly negative one
reopens the ticket one priority level up, flagged, so a person looks at it again.

Survey statuses: ``queued`` (its message is in the outbox), ``held`` (frozen account),
``skipped`` (opted out, surveys disabled), ``answered``, and a queued survey past ``expires_at``
reads as expired.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from alerts.outbox import PENDING
from alerts.store.models import AccountRow, AlertRow, OutboxRow, Survey, Ticket, TicketEvent
from alerts.tokens import hash_token, new_sms_code
from detectors.base import stable_id

QUEUED, HELD, SKIPPED, ANSWERED = "queued", "held", "skipped", "answered"
_SMS_ANSWER = re.compile(r"^\s*([1-5])\s*[,.:#\-]?\s*(\d{4,8})\b\s*(.*)$", re.S)
HOLDER_CHANNELS = ("sms", "email", "push")


class SurveySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    expires_hours: int = Field(72, ge=1, le=30 * 24, description="how long a survey can be answered")


class SurveyError(ValueError):
    """A survey answer that cannot be taken (the message is for the holder's page)."""


def settings_of(session: Session) -> SurveySettings:
    got = session.info.get("surveys")
    return got if isinstance(got, SurveySettings) else SurveySettings()


def ticket_ref(ticket_id: str) -> str:
    """The short reference people read and quote: ``t_8cdbb466d9...`` -> ``8CDBB466``."""
    return ticket_id.removeprefix("t_")[:8].upper()


def channel_of(session: Session, ticket: Ticket) -> str:
    """The channel the ticket came from: the holder's own message, else the channel an alert on
    it reached them by, else email."""
    for ev in session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id,
                                                        TicketEvent.kind == "user_message")
                              .order_by(TicketEvent.at, TicketEvent.id)):
        ch = str((ev.detail or {}).get("channel") or "")
        ch = {"app": "push", "in_app": "push", "survey": "email"}.get(ch, ch)
        if ch in HOLDER_CHANNELS:
            return ch
    alert_ids = list(session.scalars(select(AlertRow.id).where(AlertRow.ticket_id == ticket.id)))
    if alert_ids:
        reached = session.scalars(select(OutboxRow.channel).where(
            OutboxRow.alert_id.in_(alert_ids), OutboxRow.channel.in_(HOLDER_CHANNELS),
            OutboxRow.status.in_(("delivered", "sent"))).order_by(OutboxRow.created_at, OutboxRow.id)).first()
        if reached:
            return str(reached)
    return "email"


def on_resolved(session: Session, ticket: Ticket, *, now: datetime) -> Survey | None:
    """Make the ticket's survey (once per resolution) and queue it -- or hold or skip it."""
    cfg = settings_of(session)
    sid = stable_id("s", ticket.id, (ticket.resolved_at or now).isoformat())
    if session.get(Survey, sid) is not None:
        return None
    acct = session.get(AccountRow, ticket.account_id)
    survey = Survey(id=sid, ticket_id=ticket.id, account_id=ticket.account_id, channel=channel_of(session, ticket),
                    locale=ticket.locale or (acct.locale if acct else None), queue=ticket.queue,
                    category=ticket.category, agent=ticket.assignee, status=QUEUED, created_at=now,
                    expires_at=now + timedelta(hours=cfg.expires_hours))
    session.add(survey)
    if not cfg.enabled:
        survey.status, survey.reason = SKIPPED, "disabled"
    elif acct is not None and acct.survey_opt_out:
        survey.status, survey.reason = SKIPPED, "opted_out"
    elif acct is not None and acct.status == "frozen":
        survey.status, survey.reason = HELD, "account_frozen"
    else:
        _queue(session, survey, now)
    session.add(TicketEvent(ticket_id=ticket.id, at=now, kind="survey", actor="system", ref_id=sid,
                            detail={"status": survey.status, "reason": survey.reason, "channel": survey.channel}))
    return survey


def _queue(session: Session, survey: Survey, now: datetime) -> None:
    survey.status, survey.reason = QUEUED, None
    survey.sent_at = now
    if survey.channel == "sms":
        survey.sms_code = new_sms_code()
    oid = stable_id("o", survey.id, survey.channel)
    if session.get(OutboxRow, oid) is None:
        session.add(OutboxRow(id=oid, alert_id=None, account_id=survey.account_id, channel=survey.channel,
                              purpose="survey", template="survey", priority=8,
                              payload={"survey_id": survey.id, "ticket_ref": ticket_ref(survey.ticket_id)},
                              status=PENDING, next_attempt_at=now, created_at=now))


def release_held(session: Session, *, now: datetime, account_id: str | None = None) -> int:
    """Queue the held surveys of accounts no longer frozen (and still answerable); how many."""
    q = select(Survey).where(Survey.status == HELD)
    if account_id is not None:
        q = q.where(Survey.account_id == account_id)
    n = 0
    for survey in session.scalars(q.with_for_update(skip_locked=True)):
        acct = session.get(AccountRow, survey.account_id)
        if acct is not None and acct.status == "frozen":
            continue
        if _aware(survey.expires_at) <= now:
            survey.status, survey.reason = SKIPPED, "expired_while_frozen"
        elif acct is not None and acct.survey_opt_out:
            survey.status, survey.reason = SKIPPED, "opted_out"
        else:
            survey.expires_at = now + timedelta(hours=settings_of(session).expires_hours)
            _queue(session, survey, now)
            n += 1
    return n


# -- answers --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SurveyAnswer:
    survey: Survey
    reopened: bool
    flag: str | None


def by_token(session: Session, token: str) -> Survey | None:
    return session.scalars(select(Survey).where(Survey.token_hash == hash_token(token))).first()


def answer(session: Session, survey: Survey, score: int, comment: str, *, now: datetime, channel: str,
           opt_out: bool = False) -> SurveyAnswer:
    """Record the one answer (compare-and-set: a second answer, by any channel, is refused)."""
    if not 1 <= int(score) <= 5:
        raise SurveyError("score must be 1 to 5")
    if survey.status != QUEUED or _aware(survey.expires_at) <= now:
        raise SurveyError("this survey was already answered or has expired")
    comment = (comment or "").strip()[:2000]
    done = session.execute(update(Survey).where(Survey.id == survey.id, Survey.status == QUEUED)
                           .values(status=ANSWERED, score=int(score), comment=comment or None, answered_at=now)
                           .execution_options(synchronize_session=False))
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise SurveyError("this survey was already answered or has expired")
    session.refresh(survey)
    acct = session.get(AccountRow, survey.account_id)
    if opt_out and acct is not None:
        acct.survey_opt_out = True
        acct.updated_at = now
    ticket = session.get(Ticket, survey.ticket_id)
    reopened, flag = False, None
    if ticket is not None:
        session.add(TicketEvent(ticket_id=ticket.id, at=now, kind="survey_answer", actor="user", ref_id=survey.id,
                                detail={"score": int(score), "comment": comment, "channel": channel,
                                        "opt_out": opt_out}))
        if comment:
            reopened, flag = _comment(session, survey, ticket, comment, now)
    return SurveyAnswer(survey, reopened, flag)


def _comment(session: Session, survey: Survey, ticket: Ticket, comment: str, now: datetime
             ) -> tuple[bool, str | None]:
    from tickets.core import TicketConflict, move
    from tickets.sentiment import apply_to_ticket, score_text

    s = score_text(comment, survey.locale)
    survey.sentiment = round(s.score, 3)
    if not s.strongly_negative:
        return False, None
    if ticket.status in ("resolved",):
        try:
            move(session, ticket, "reopen", now=now, actor="user", detail={"by": "survey", "survey_id": survey.id})
        except TicketConflict:
            return False, s.flag  # another ticket holds the account and category: staff see the flag there
    apply_to_ticket(session, ticket, comment, survey.locale, now=now, ref_id=f"survey:{survey.id}", source="survey")
    return True, s.flag


def sms_answer(session: Session, account_ids: list[str], body: str, *, now: datetime) -> SurveyAnswer | None:
    """An SMS reply ``<score> <code> [comment]`` to a queued SMS survey of these accounts; None when
    the text is not a survey answer (the caller treats it as an ordinary message)."""
    m = _SMS_ANSWER.match(body or "")
    if m is None or not account_ids:
        return None
    survey = session.scalars(select(Survey).where(
        Survey.account_id.in_(account_ids), Survey.sms_code == m.group(2), Survey.status == QUEUED)).first()
    if survey is None:
        return None
    return answer(session, survey, int(m.group(1)), m.group(3), now=now, channel="sms")


# -- results --------------------------------------------------------------------------------------
GROUPS = ("queue", "category", "agent")


def results(session: Session, by: str, *, since: datetime | None = None) -> list[dict[str, Any]]:
    """Per queue, category or agent: surveys asked, answered, response rate, mean score, share of
    4-5 (satisfied) and of 1-2 (unhappy)."""
    if by not in GROUPS:
        raise ValueError(f"group surveys by one of {', '.join(GROUPS)}, not {by!r}")
    q = select(Survey).where(Survey.status.in_((QUEUED, ANSWERED)))
    if since is not None:
        q = q.where(Survey.created_at >= since)
    groups: dict[str, list[Survey]] = defaultdict(list)
    for s in session.scalars(q):
        groups[str(getattr(s, by) or "-")].append(s)
    out = []
    for key in sorted(groups):
        rows = groups[key]
        scores = [r.score for r in rows if r.score is not None]
        out.append({by: key, "asked": len(rows), "answered": len(scores),
                    "response_rate": round(len(scores) / len(rows), 3) if rows else None,
                    "mean_score": round(sum(scores) / len(scores), 2) if scores else None,
                    "satisfied": round(sum(1 for x in scores if x >= 4) / len(scores), 3) if scores else None,
                    "unhappy": round(sum(1 for x in scores if x <= 2) / len(scores), 3) if scores else None})
    return out


def _aware(dt: datetime) -> datetime:
    from datetime import UTC

    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def queue_ack(session: Session, ticket: Ticket, *, channel: str, ref_id: str, now: datetime) -> str | None:
    """Acknowledge a holder's message on ``channel`` (push for in-app messages) with the ticket's
    reference, through the outbox (template ``ticket_ack``); once per message."""
    if channel not in HOLDER_CHANNELS:
        return None
    oid = stable_id("o", ticket.id, "ack", ref_id)
    if session.get(OutboxRow, oid) is None:
        session.add(OutboxRow(id=oid, alert_id=None, account_id=ticket.account_id, channel=channel,
                              purpose="ticket_ack", template="ticket_ack", priority=6,
                              payload={"ticket_ref": ticket_ref(ticket.id)}, status=PENDING, next_attempt_at=now,
                              created_at=now))
    return oid


def _register() -> None:
    from tickets.core import ON_RESOLVED

    if on_resolved not in ON_RESOLVED:
        ON_RESOLVED.append(on_resolved)


_register()
